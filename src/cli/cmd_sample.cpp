// `recur sample`: a thin wrapper over src/train/sample.h.
// Invariant: generated text reaches stdout token by token (flushed), so a reader sees it as it is made.
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/fs.h"
#include "train/sample.h"

namespace recur::cli {

int cmd_sample(const Argv& argv) {
  Args args("recur sample --run-dir DIR (--prompt TEXT | --prompt-file FILE) --tokens N [--temperature T] [--top-k K]\n"
            "             [--top-p P] [--seed S]",
            "Continue a prompt with a trained run's model, writing the generated text to stdout as it is made,\n"
            "in the dataset's units: raw bytes (byte corpora), characters (text8), words (WikiText-103).\n"
            "XL and BRT carry their recurrent state, so generation goes on past one segment; models without\n"
            "state re-read the last train.tgt_len tokens at each step. The same seed gives the same text on\n"
            "the CPU and on a GPU.");
  args.required("run-dir", "DIR", "run directory written by `recur train`")
      .option("prompt", "TEXT", "text to continue")
      .option("prompt-file", "FILE", "read the text to continue from FILE")
      .required("tokens", "N", "tokens to generate (bytes, characters or words)")
      .option("temperature", "T", "divides the log-probabilities; 0 = greedy (argmax)", "1")
      .option("top-k", "K", "sample among the K most likely tokens (0 = all)", "0")
      .option("top-p", "P", "then among the smallest most-likely set with probability >= P (1 = all)", "1")
      .option("seed", "S", "seed of the generator that makes every draw", "1");
  if (!args.parse(argv)) return 0;
  if (args.has("prompt") == args.has("prompt-file")) throw UsageError("give exactly one of --prompt TEXT and --prompt-file FILE");
  std::string prompt = args.has("prompt") ? args.get("prompt") : read_file(args.get("prompt-file"));
  train::SampleOptions o;
  o.tokens = args.get_int("tokens");
  o.temperature = args.get_double("temperature");
  o.top_k = args.get_int("top-k");
  o.top_p = args.get_double("top-p");
  int64_t seed = args.get_int("seed");
  if (seed < 0) throw UsageError(fmt::format("--seed must be >= 0, got {}", seed));
  o.seed = static_cast<uint64_t>(seed);
  train::check_sample_options(o);
  train::sample_run(args.get("run-dir"), prompt, o, [](const std::string& text) {
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
      fail("write error on stdout (disk full or closed pipe?)");
    }
  });
  std::fputc('\n', stderr);
  return 0;
}

}  // namespace recur::cli
