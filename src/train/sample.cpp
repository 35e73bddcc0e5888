// `recur sample`: text from a trained run, token by token, in the dataset's units (bytes, characters, words).
// Invariant: every draw is made on the CPU in fp64 from one CPU generator seeded once, so a seed gives the
// same text whichever device runs the model.
#include "train/sample.h"

#include <torch/torch.h>

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/dataset.h"
#include "train/trainer.h"

namespace recur::train {

void check_sample_options(const SampleOptions& o) {
  if (o.tokens < 1 || o.tokens > kMaxSampleTokens) {
    throw UsageError(fmt::format("--tokens must be between 1 and {}, got {}", kMaxSampleTokens, o.tokens));
  }
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature)) {
    throw UsageError(fmt::format("--temperature must be a finite number >= 0 (0 = greedy), got {}", o.temperature));
  }
  if (o.top_k < 0) throw UsageError(fmt::format("--top-k must be >= 0 (0 = off), got {}", o.top_k));
  if (!(o.top_p > 0 && o.top_p <= 1)) throw UsageError(fmt::format("--top-p must be in (0, 1] (1 = off), got {}", o.top_p));
}

int64_t draw_token(const torch::Tensor& log_probs, const SampleOptions& o, at::Generator& generator) {
  auto lp = log_probs.detach().to(torch::kCPU, torch::kFloat64).reshape({-1});
  if (o.temperature == 0) return lp.argmax().item<int64_t>();
  auto [sorted, order] = (lp / o.temperature).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true);
  int64_t keep = sorted.size(0);
  if (o.top_k > 0) keep = std::min(keep, o.top_k);
  auto probs = torch::softmax(sorted.slice(0, 0, keep), /*dim=*/0);
  if (o.top_p < 1) {
    // The smallest prefix whose mass reaches top_p: the tokens before the first cumulative sum >= top_p, plus it.
    int64_t below = (probs.cumsum(0) < o.top_p).sum().item<int64_t>();
    keep = std::min(keep, below + 1);
    probs = probs.slice(0, 0, keep);
  }
  auto p = probs.contiguous();
  const double* pp = p.data_ptr<double>();
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += pp[i];
  double u = torch::rand({1}, generator, torch::kFloat64).item<double>() * total;
  int64_t i = 0;
  for (double cum = pp[0]; i + 1 < keep && cum <= u; cum += pp[++i]) {
  }
  return order[i].item<int64_t>();
}

namespace {

torch::Device device_of(model::LanguageModel& model) {
  auto params = model.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

}  // namespace

SampleContext::SampleContext(model::LanguageModel& model, const Config& config)
    : model_(model),
      device_(device_of(model)),
      mode_(model.carries_state() ? ContextMode::kCarryState : ContextMode::kSlidingWindow),
      segment_(config.get_int("train.tgt_len")),
      block_(1) {
  const std::string type = config.get_string("model.type");
  // BRT steps its state once per whole window; make_model guarantees train.tgt_len is a multiple of it.
  if (type == "brt" || type == "rsa_brt") block_ = config.get_int("model.brt_window");
}

model::ForwardResult SampleContext::run(int64_t count) {
  auto tokens = torch::tensor(std::vector<int64_t>(pending_.begin(), pending_.begin() + count), torch::kInt64)
                    .unsqueeze(0)
                    .to(device_);
  auto out = model_.forward(tokens, state_);
  if (!out.logits.defined()) {
    fail("recur sample: model.type = {} scores with an adaptive softmax (model.cutoffs), which gives no full "
         "distribution to sample from; sampling supports models with a full softmax",
         model_.type());
  }
  return out;
}

void SampleContext::commit(int64_t count) {
  state_ = run(count).state;
  pending_.erase(pending_.begin(), pending_.begin() + count);
}

torch::Tensor SampleContext::next_log_probs() {
  if (pending_.empty()) fail("recur sample: no token to continue from (the prompt is empty)");
  torch::NoGradGuard no_grad;
  model::ForwardResult out;
  if (mode_ == ContextMode::kSlidingWindow) {
    if (static_cast<int64_t>(pending_.size()) > segment_) pending_.erase(pending_.begin(), pending_.end() - segment_);
    out = run(static_cast<int64_t>(pending_.size()));
  } else {
    while (static_cast<int64_t>(pending_.size()) > segment_) commit(segment_);
    const int64_t n = static_cast<int64_t>(pending_.size()), whole = n / block_ * block_;
    if (whole > 0 && whole < n) commit(whole);
    out = run(static_cast<int64_t>(pending_.size()));
    if (static_cast<int64_t>(pending_.size()) % block_ == 0) {
      state_ = out.state;
      pending_.clear();
    }
  }
  auto last = out.logits[0][out.logits.size(1) - 1].to(torch::kCPU, torch::kFloat64);
  return torch::log_softmax(last, /*dim=*/0);
}

std::vector<int64_t> generate(model::LanguageModel& model, const Config& config, const std::vector<int64_t>& prompt,
                              const SampleOptions& options, const std::function<void(int64_t)>& emit) {
  check_sample_options(options);
  if (prompt.empty()) throw UsageError("the prompt is empty: give at least one symbol to continue from");
  model.eval();
  SampleContext context(model, config);
  for (int64_t t : prompt) context.push(t);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(options.tokens));
  for (int64_t i = 0; i < options.tokens; ++i) {
    int64_t token = draw_token(context.next_log_probs(), options, generator);
    context.push(token);
    out.push_back(token);
    if (emit) emit(token);
  }
  return out;
}

TextCodec::TextCodec(const data::Dataset& dataset)
    : symbols_(dataset.symbols()), bytes_(dataset.manifest().vocab.bytes), words_(!dataset.manifest().vocab.file.empty()) {
  single_chars_ = std::all_of(symbols_.begin(), symbols_.end(), [](const std::string& s) { return s.size() == 1; });
  for (size_t i = 0; i < symbols_.size(); ++i) ids_.emplace(symbols_[i], static_cast<int64_t>(i));
}

std::vector<int64_t> TextCodec::encode_prompt(const std::string& text) {
  std::vector<int64_t> ids;
  auto unk = ids_.find("<unk>");
  auto lookup = [&](const std::string& symbol, size_t offset) {
    auto it = ids_.find(symbol);
    if (it != ids_.end()) return ids.push_back(it->second);
    if (unk != ids_.end()) return ids.push_back(unk->second);
    std::string shown = symbol;
    if (symbol.size() == 1 && !std::isprint(static_cast<unsigned char>(symbol[0]))) {
      shown = fmt::format("\\x{:02x}", static_cast<unsigned char>(symbol[0]));
    }
    fail("the prompt's symbol '{}' (at byte {}) is not in the dataset's vocabulary of {} symbols, which has no <unk>",
         shown, offset, symbols_.size());
  };
  if (bytes_) {
    for (unsigned char c : text) ids.push_back(c);
  } else if (single_chars_) {
    for (size_t i = 0; i < text.size(); ++i) lookup(std::string(1, text[i]), i);
  } else {
    // Symbols separated by white space; a line end is <eos> in a word vocabulary.
    size_t i = 0;
    while (i < text.size()) {
      if (text[i] == '\n' && words_) {
        lookup("<eos>", i);
        ++i;
      } else if (std::isspace(static_cast<unsigned char>(text[i]))) {
        ++i;
      } else {
        size_t end = i;
        while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
        lookup(text.substr(i, end - i), i);
        i = end;
      }
    }
  }
  at_line_start_ = text.empty() || text.back() == '\n';
  return ids;
}

std::string TextCodec::render(int64_t token) {
  const std::string& symbol = symbols_.at(static_cast<size_t>(token));
  if (words_ && symbol == "<eos>") {
    at_line_start_ = true;
    return "\n";
  }
  std::string text = !single_chars_ && !at_line_start_ ? " " + symbol : symbol;
  at_line_start_ = false;
  return text;
}

LoadedRun load_run(const std::string& run_dir) {
  const std::string cfg = run_dir + "/config.yaml", params = run_dir + "/model.pt";
  if (!path_exists(cfg)) fail("{} is not a run directory: {} is missing", run_dir, cfg);
  LoadedRun run;
  run.config = std::make_shared<Config>(Config::load(cfg));
  // Sizes and layout are checked on open; the checksums were verified when the run trained.
  run.dataset = data::Dataset::open(expand_user(run.config->get_string("data.path")), /*verify_checksums=*/false);
  run.model = model::make_model(*run.config, static_cast<int64_t>(run.dataset->manifest().vocab.size));
  if (!path_exists(params)) fail("{} has no trained parameters ({} is missing)", run_dir, params);
  try {
    torch::load(run.model, params, torch::Device(torch::kCPU));
  } catch (const c10::Error& e) {
    fail("cannot load {}: {}", params, e.what_without_backtrace());
  }
  torch::Device device(torch::kCPU);
  const std::string d = run.config->get_string("train.device");
  if (d != "cpu" && torch::cuda::is_available()) {
    device = resolve_device(*run.config, parallel::detect_launch());
  } else if (d != "cpu" && d != "auto") {
    spdlog::info("{} was trained with train.device = {}; no GPU here: sampling on the CPU", run_dir, d);
  }
  run.model->to(device);
  run.model->eval();
  return run;
}

void sample_run(const std::string& run_dir, const std::string& prompt, const SampleOptions& options,
                const std::function<void(const std::string&)>& write) {
  check_sample_options(options);
  LoadedRun run = load_run(run_dir);
  TextCodec codec(*run.dataset);
  std::vector<int64_t> ids = codec.encode_prompt(prompt);
  generate(*run.model, *run.config, ids, options, [&](int64_t token) { write(codec.render(token)); });
}

}  // namespace recur::train
