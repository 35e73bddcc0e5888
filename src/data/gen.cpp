// See gen.h. Generator errors (std::invalid_argument) become recur::Error before anything is written.
#include "data/gen.h"

#include <unistd.h>

#include <stdexcept>

#include "core/error.h"
#include "core/version.h"
#include "data/shard_writer.h"

namespace recur::data {
namespace {

// Examples are generated in memory before they are written (about 16 bytes a token with its labels):
// refuse sizes the machine cannot hold instead of thrashing or being killed.
void check_fits_in_memory(const char* command, double tokens) {
  const double memory = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  const double need = 16.0 * tokens;
  if (need > memory / 2) {
    fail("{}: the requested examples hold up to {:.3g} tokens (about {:.3g} GB while generating), more than half of "
         "this machine's {:.3g} GB of memory; lower the counts or lengths",
         command, tokens, need / 1e9, memory / 1e9);
  }
}

constexpr int64_t kMaxCopyAlphabet = 1 << 16;

double max_tokens(const FormalSplitSpec& s) { return static_cast<double>(s.count) * static_cast<double>(s.max_len); }

Manifest write_examples(Manifest m, const std::string& out_dir, bool force,
                        const std::vector<std::pair<std::string, const std::vector<Example>*>>& splits) {
  DatasetWriter writer(out_dir, std::move(m), force);
  for (const auto& [name, examples] : splits) {
    writer.begin_split(name, kDefaultShardTokens);
    for (const auto& e : *examples) writer.append_example(e);
    writer.end_split();
  }
  return writer.finish();
}

nlohmann::json split_json(const FormalSplitSpec& s) {
  return {{"count", s.count}, {"min_len", s.min_len}, {"max_len", s.max_len}};
}

}  // namespace

Manifest write_formal_dataset(const FormalSpec& spec, const std::string& out_dir, bool force) {
  check_fits_in_memory("recur gen formal", max_tokens(spec.train) + max_tokens(spec.bin0) + max_tokens(spec.bin1));
  FormalDataset data;
  try {
    data = generate_formal_dataset(spec);
  } catch (const std::invalid_argument& e) {
    fail("recur gen formal: {}", e.what());
  }
  Manifest m;
  m.corpus = "formal";
  m.tool_version = version_string();
  m.layout = Layout::kExamples;
  m.example_fields = {"label_sets"};
  m.vocab.symbols = formal_vocabulary(spec.language);
  m.vocab.size = m.vocab.symbols.size();
  m.token_bytes = token_bytes_for_vocab(m.vocab.size);
  m.label_bytes = m.vocab.size <= 8 ? 1 : m.vocab.size <= 16 ? 2 : 4;
  m.params = {{"language", formal_language_name(spec.language)},
              {"seed", spec.seed},
              {"lengths", formal_option_name(spec.options.lengths)},
              {"strings", formal_option_name(spec.options.strings)},
              {"duplicates", spec.options.distinct ? "drop" : "keep"},
              {"targets", formal_option_name(spec.options.targets)},
              {"train", split_json(spec.train)},
              {"valid", split_json(spec.bin0)},
              {"test", split_json(spec.bin1)},
              {"splits", {{"valid", "bin0"}, {"test", "bin1"}}},
              {"eos_symbol", m.vocab.size - 1}};
  return write_examples(m, out_dir, force, {{"train", &data.train}, {"valid", &data.bin0}, {"test", &data.bin1}});
}

Manifest write_copy_dataset(const CopyDatasetSpec& spec, const std::string& out_dir, bool force) {
  std::vector<Example> parts[3];
  const int64_t counts[3] = {spec.train, spec.valid, spec.test};
  check_fits_in_memory("recur gen copy",
                       static_cast<double>(spec.base.max_len) * static_cast<double>(spec.train + spec.valid + spec.test));
  if (spec.base.alphabet > kMaxCopyAlphabet) {
    fail("recur gen copy: alphabet {} is larger than {} symbols", spec.base.alphabet, kMaxCopyAlphabet);
  }
  for (int s = 0; s < 3; ++s) {
    CopySpec c = spec.base;
    c.count = counts[s];
    c.seed = derive_seed(spec.base.seed, static_cast<uint64_t>(s));
    try {
      parts[s] = generate_copy(c);
    } catch (const std::invalid_argument& e) {
      fail("recur gen copy: {}", e.what());
    }
  }
  Manifest m;
  m.corpus = "copy";
  m.tool_version = version_string();
  m.layout = Layout::kExamples;
  m.example_fields = {"loss_mask"};
  m.vocab.symbols = copy_vocabulary(spec.base.alphabet);
  m.vocab.size = m.vocab.symbols.size();
  m.token_bytes = token_bytes_for_vocab(m.vocab.size);
  m.params = {{"seed", spec.base.seed},           {"min_len", spec.base.min_len}, {"max_len", spec.base.max_len},
              {"pattern_len", spec.base.pattern_len}, {"alphabet", spec.base.alphabet}, {"train", spec.train},
              {"valid", spec.valid},              {"test", spec.test},            {"separator", m.vocab.size - 1}};
  return write_examples(m, out_dir, force, {{"train", &parts[0]}, {"valid", &parts[1]}, {"test", &parts[2]}});
}

}  // namespace recur::data
