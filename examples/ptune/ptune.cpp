// ptune: train and evaluate deep prompts (and the baselines) on the standard tasks.
//
//   ptune train   --task sst2|rte|wsc|conll03|squad|webnlg --method ptv2|ptv2-hidden|prefix|prompt|ptuning|lora|full
//                 --model DIR --data DIR --out DIR [--tokens N --lr X --epochs N --batch N --seed N ...]
//   ptune eval    --model DIR --adapter DIR --task ... --data DIR
//   ptune predict --model DIR --adapter DIR --task ... --input FILE
//
// `ptune <command> --help` lists every option; options.hpp has the per-task defaults and where
// they come from. Exit status: 0 success, 1 a failure (its message on stderr), 2 a usage error.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <deepprompt/backend/cpu/threads.hpp>
#ifdef DEEPPROMPT_HAVE_MPI
#include <deepprompt/train/mpi.hpp>
#endif

#include "options.hpp"
#include "tasks.hpp"

namespace fs = std::filesystem;
namespace dp = deepprompt;

namespace {

const char* kUsage =
    "usage: ptune train|eval|predict [options]   (ptune <command> --help for its options)\n";

const char* kTrainHelp =
    "ptune train: trains a method's parameters (and the task head) on a task, the backbone frozen\n"
    "  --task T        sst2 | rte | wsc | conll03 | squad | webnlg\n"
    "  --method M      ptv2 (P-Tuning v2, key/value prefix) | ptv2-hidden (hidden-state prompt) |\n"
    "                  prefix (MLP reparameterisation) | prompt (Prompt Tuning) | ptuning (P-Tuning v1) |\n"
    "                  lora | full   (default ptv2); on USE Lite also probe (head only)\n"
    "  --model DIR     Hugging Face model folder: config.json, model.safetensors, vocab.txt or tokenizer.json;\n"
    "                  sst2, rte, wsc also take a TF.js USE Lite folder (model.json, vocab.json: docs/use_lite.md)\n"
    "  --data DIR      the task's files (sst2: train.tsv dev.tsv; rte, wsc: train.jsonl val.jsonl;\n"
    "                  conll03: train.txt valid.txt; squad: train.json dev.json; webnlg: train/ dev/)\n"
    "  --out DIR       checkpoint, best adapter (DIR/best), eval_log.jsonl, ptune_config.json\n"
    "  --tokens N      prompt length          --lr X           learning rate\n"
    "  --epochs N      epochs                 --max-steps N    optimiser steps instead of epochs\n"
    "  --batch N       batch size             --grad-accum N   micro-batches per step (1)\n"
    "  --max-length N  tokens per example     --seed N         initialisation, shuffling, dropout\n"
    "  --weight-decay X (0)   --warmup-ratio X (0)   --max-grad-norm X (1.0)\n"
    "  --dropout X     BERT's hidden and head dropout (T5: its config's dropout_rate)\n"
    "  --prefix-dropout X  THUDM's dropout on the prefix (0)\n"
    "  --lora-r N (8)  --lora-alpha X (16)  --lora-dropout X (0.1)   LoRA on query and value\n"
    "  --eval-every N  steps (0: each epoch)  --patience N     early stopping (0: off)\n"
    "  --max-train N / --max-eval N   use only the first N examples (0: all)\n"
    "  --bucket        length bucketing       --resume         continue from DIR/checkpoint\n"
    "  --stop-after N  stop after step N with the checkpoint saved, as an interruption would\n"
    "  --doc-stride N  squad: tokens shared by consecutive windows of a long context (128)\n"
    "  --threads N     OpenMP threads (default: all)\n"
    "  --distributed   data-parallel over MPI: mpirun -np N ptune train --distributed ... (--batch is the\n"
    "                  global batch, split over the ranks; rank 0 evaluates and writes; docs/distributed.md)\n"
    "Defaults per task follow the official P-tuning-v2 run scripts (docs/ptune.md).\n";

const char* kEvalHelp =
    "ptune eval: evaluates a trained adapter; prints the metrics as one JSON object\n"
    "  --task T  --model DIR  --adapter DIR (a PEFT adapter folder, e.g. OUT/best)  --data DIR\n"
    "  [--max-eval N] [--max-length N] [--doc-stride N] [--threads N]\n";

const char* kPredictHelp =
    "ptune predict: runs a trained adapter on new inputs; one result per input line on stdout\n"
    "  --task T  --model DIR  --adapter DIR  --input FILE (sst2: a sentence a line; rte, wsc: text<TAB>text;\n"
    "  conll03: space-separated words; squad: question<TAB>context; webnlg: linearised triples)\n"
    "  [--max-length N] [--doc-stride N] [--threads N]\n";

int usage_error(const std::string& what, const char* help) {
  std::fprintf(stderr, "ptune: %s\n%s", what.c_str(), help);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage_error("missing command", kUsage);
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const char* help = cmd == "train" ? kTrainHelp : cmd == "eval" ? kEvalHelp : cmd == "predict" ? kPredictHelp : nullptr;
  if (!help) return usage_error("unknown command '" + cmd + "'", kUsage);
  try {
    const ptune::Args args(argc, argv, 2, {"resume", "bucket", "distributed", "bf16"});
    if (args.has("help")) {
      std::fputs(help, stdout);
      return 0;
    }
    args.check_known(cmd == "train" ? ptune::kTrainOptions : cmd == "eval" ? ptune::kEvalOptions : ptune::kPredictOptions);
    if (args.has("threads")) dp::cpu::set_num_threads(static_cast<int>(args.num<long>("threads", 0)));
    if (cmd == "train" && args.has("distributed")) {
#ifdef DEEPPROMPT_HAVE_MPI
      deepprompt::train::MpiSession mpi(&argc, &argv);
      deepprompt::train::MpiSync sync;
      ptune::g_sync = &sync;
      const int status = ptune::train(args);
      ptune::g_sync = nullptr;
      return status;
#else
      throw deepprompt::Error("--distributed: this ptune was built without MPI (Debian libopenmpi-dev)");
#endif
    }
    if (cmd == "train") return ptune::train(args);
    if (cmd == "eval") return ptune::eval(args);
    return ptune::predict(args);
  } catch (const ptune::UsageError& e) {
    return usage_error(e.what(), help);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ptune %s: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
