// `recur sample`: text from a trained run, token by token, in the dataset's units (bytes, characters, words).
// Invariant: every draw is made on the CPU in fp64 from one CPU generator seeded once, so a seed gives the
// same text whichever device runs the model.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include "model/model.h"

namespace recur {
class Config;
}
namespace recur::data {
class Dataset;
}

namespace recur::train {

constexpr int64_t kMaxSampleTokens = 1000000;

struct SampleOptions {
  int64_t tokens = 200;      // tokens to generate, 1..kMaxSampleTokens
  double temperature = 1.0;  // divides the log-probabilities; 0 = greedy (argmax)
  int64_t top_k = 0;         // keep the k most likely tokens (0 = all)
  double top_p = 1.0;        // then the smallest most-likely set holding probability >= top_p (1 = all)
  uint64_t seed = 1;         // of the CPU generator that makes every draw
};

// Throws a UsageError naming the option that is out of range.
void check_sample_options(const SampleOptions& options);

// One token drawn from log-probabilities [V] (any device and dtype; moved to the CPU in fp64): temperature,
// then top-k, then top-p over the tokens sorted by probability (ties in token order), then an inverse-CDF
// draw of one uniform number from `generator`. Temperature 0 is the argmax (the first of equal maxima).
int64_t draw_token(const torch::Tensor& log_probs, const SampleOptions& options, at::Generator& generator);

// How a model family gets the distribution of the next token:
//  - kCarryState (XL with memory, BRT, RSA variants): the model's recurrent state is carried. Known tokens
//    are fed in segments of at most train.tgt_len; the state is committed after every whole block (1 token
//    for XL, model.brt_window tokens for BRT, whose state steps once per whole window); the tokens of an
//    unfinished block are re-run from the committed state at each step.
//  - kSlidingWindow (transformer, gpt, R-Transformer, recurrent transformer, XL without memory): no state;
//    the last train.tgt_len tokens are re-run from an empty state at every step (the context they trained on).
enum class ContextMode { kCarryState, kSlidingWindow };

class SampleContext {
 public:
  // `config` is the run's: train.tgt_len, model.type and model.brt_window choose the mode and block.
  SampleContext(model::LanguageModel& model, const Config& config);
  void push(int64_t token) { pending_.push_back(token); }
  // Log-probabilities [V] (CPU, fp64) of the token after every token pushed so far (at least one).
  torch::Tensor next_log_probs();
  ContextMode mode() const { return mode_; }
  int64_t block() const { return block_; }
  const model::State& state() const { return state_; }

 private:
  model::ForwardResult run(int64_t count);  // the first `count` pending tokens from the committed state
  void commit(int64_t count);
  model::LanguageModel& model_;
  torch::Device device_;
  ContextMode mode_;
  int64_t segment_, block_;
  model::State state_;            // after every committed token (kCarryState); always empty otherwise
  std::vector<int64_t> pending_;  // tokens not yet committed (kSlidingWindow: the recent context)
};

// Feeds `prompt` (at least one token), then draws options.tokens tokens, calling `emit` after each.
std::vector<int64_t> generate(model::LanguageModel& model, const Config& config, const std::vector<int64_t>& prompt,
                              const SampleOptions& options, const std::function<void(int64_t)>& emit = {});

// The dataset's units, as `recur shard dump` writes them: raw bytes for byte vocabularies, symbols
// concatenated for one-character vocabularies, symbols separated by spaces otherwise (words), with a
// line end for each <eos> of a word vocabulary.
class TextCodec {
 public:
  explicit TextCodec(const data::Dataset& dataset);
  // Token ids of a prompt; an unknown symbol maps to <unk> when the vocabulary has one, else is an error
  // naming it. Rendering continues after the prompt (a word after a word gets a space).
  std::vector<int64_t> encode_prompt(const std::string& text);
  std::string render(int64_t token);

 private:
  std::vector<std::string> symbols_;
  std::unordered_map<std::string, int64_t> ids_;
  bool bytes_ = false, single_chars_ = false, words_ = false;
  bool at_line_start_ = true;
};

// A run directory's config, dataset and final parameters, on the run's train.device where this machine has
// it, else on the CPU (the rule of `recur eval`).
struct LoadedRun {
  std::shared_ptr<Config> config;
  std::shared_ptr<data::Dataset> dataset;
  std::shared_ptr<model::LanguageModel> model;
};
LoadedRun load_run(const std::string& run_dir);

// `recur sample`: encodes the prompt, generates, and hands each token's text to `write` as it is drawn.
void sample_run(const std::string& run_dir, const std::string& prompt, const SampleOptions& options,
                const std::function<void(const std::string&)>& write);

}  // namespace recur::train
