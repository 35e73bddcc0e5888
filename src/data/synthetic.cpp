// Formal-language and copy-task generators: each language is a small DFA, sampled uniformly.
// Invariant: only raw mt19937_64 draws feed sampling; std:: distributions differ across libraries.
#include "data/synthetic.h"

#include <algorithm>
#include <array>
#include <random>
#include <stdexcept>

namespace recur::data {
namespace {

// ---- portable random draws ------------------------------------------------------------------

// Uniform in [0, n) by rejection: accepted raw draws span a multiple of n values, so no bias.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
  for (;;) {
    const uint64_t x = rng();
    if (x >= threshold) return x % n;
  }
}

int64_t uniform_in(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(hi - lo) + 1));
}

// Uniform in [0, 1) with the 53 bits a double can hold.
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// ---- language table ------------------------------------------------------------------------

struct NamedLanguage {
  const char* name;
  FormalLanguage language;
};
constexpr std::array<NamedLanguage, 6> kLanguages = {{
    {"parity", FormalLanguage::kParity},
    {"tomita3", FormalLanguage::kTomita3},
    {"tomita5", FormalLanguage::kTomita5},
    {"tomita6", FormalLanguage::kTomita6},
    {"d2", FormalLanguage::kD2},
    {"d4", FormalLanguage::kD4},
}};

bool is_dyck(FormalLanguage language) {
  return language == FormalLanguage::kD2 || language == FormalLanguage::kD4;
}

// ---- DFAs -----------------------------------------------------------------------------------

constexpr uint32_t kNumSymbols = 2;  // every language here is over a two-letter alphabet
constexpr uint32_t kEosId = kNumSymbols;

struct Dfa {
  std::vector<std::array<int, kNumSymbols>> delta;
  std::vector<bool> accepting;
  std::vector<bool> live;  // an accepting state is reachable; filled by finish()
  int start = 0;

  void finish() {
    live = accepting;
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t q = 0; q < delta.size(); ++q) {
        if (live[q]) continue;
        for (int next : delta[q]) {
          if (live[next]) {
            live[q] = true;
            changed = true;
            break;
          }
        }
      }
    }
  }

  int num_states() const { return static_cast<int>(delta.size()); }

  // Bits of the symbols whose successor is live, plus EOS if q accepts.
  uint32_t label_set(int q) const {
    uint32_t mask = accepting[q] ? (1u << kEosId) : 0u;
    for (uint32_t c = 0; c < kNumSymbols; ++c) {
      if (live[delta[q][c]]) mask |= 1u << c;
    }
    return mask;
  }
};

// D_n: the state is the nesting depth 0..n; state n+1 is the sink for underflow or depth > n.
Dfa dyck_dfa(int depth) {
  Dfa dfa;
  const int dead = depth + 1;
  for (int d = 0; d <= depth; ++d) {
    dfa.delta.push_back({d < depth ? d + 1 : dead, d > 0 ? d - 1 : dead});
    dfa.accepting.push_back(d == 0);
  }
  dfa.delta.push_back({dead, dead});
  dfa.accepting.push_back(false);
  return dfa;
}

Dfa build_dfa(FormalLanguage language) {
  Dfa dfa;
  switch (language) {
    case FormalLanguage::kParity:  // state = #1 mod 2
      dfa.delta = {{0, 1}, {1, 0}};
      dfa.accepting = {true, false};
      break;
    case FormalLanguage::kTomita3:
      // q0: no pending odd run of 1s; q1: inside an odd run of 1s; q2: odd run of 0s right after
      // an odd run of 1s; q3: even run of 0s after an odd run of 1s; q4: dead.
      dfa.delta = {{0, 1}, {2, 0}, {3, 4}, {2, 1}, {4, 4}};
      dfa.accepting = {true, true, false, true, false};
      break;
    case FormalLanguage::kTomita5:  // state = 2 * (#0 mod 2) + (#1 mod 2)
      dfa.delta = {{2, 1}, {3, 0}, {0, 3}, {1, 2}};
      dfa.accepting = {true, false, false, false};
      break;
    case FormalLanguage::kTomita6:  // state = (#0 - #1) mod 3
      dfa.delta = {{1, 2}, {2, 0}, {0, 1}};
      dfa.accepting = {true, false, false};
      break;
    case FormalLanguage::kD2:
      dfa = dyck_dfa(2);
      break;
    case FormalLanguage::kD4:
      dfa = dyck_dfa(4);
      break;
  }
  dfa.finish();
  return dfa;
}

int run_dfa(const Dfa& dfa, const std::vector<uint32_t>& tokens, FormalLanguage language) {
  int q = dfa.start;
  for (uint32_t tok : tokens) {
    if (tok >= kNumSymbols) {
      throw std::invalid_argument("formal language '" + formal_language_name(language) +
                                  "': token id " + std::to_string(tok) +
                                  " is not a symbol (valid ids 0.." +
                                  std::to_string(kNumSymbols - 1) + ")");
    }
    q = dfa.delta[q][tok];
  }
  return q;
}

// completions[r][q] is proportional to the number of strings of length r that lead q to
// acceptance. Each row is rescaled by its maximum: the sampler only compares entries within one
// row, and rescaling keeps long lengths (2^L members) from overflowing a double.
std::vector<std::vector<double>> completion_table(const Dfa& dfa, int64_t max_len) {
  std::vector<std::vector<double>> table(static_cast<size_t>(max_len) + 1,
                                         std::vector<double>(dfa.num_states(), 0.0));
  for (int q = 0; q < dfa.num_states(); ++q) table[0][q] = dfa.accepting[q] ? 1.0 : 0.0;
  for (size_t r = 1; r < table.size(); ++r) {
    double row_max = 0.0;
    for (int q = 0; q < dfa.num_states(); ++q) {
      double total = 0.0;
      for (int next : dfa.delta[q]) total += table[r - 1][next];
      table[r][q] = total;
      row_max = std::max(row_max, total);
    }
    if (row_max > 0.0) {
      for (double& v : table[r]) v /= row_max;
    }
  }
  return table;
}

void check_split(FormalLanguage language, const FormalSplitSpec& split) {
  const std::string where = "formal language '" + formal_language_name(language) + "': ";
  if (split.count < 0) {
    throw std::invalid_argument(where + "count must be >= 0, got " + std::to_string(split.count));
  }
  if (split.min_len < 1 || split.max_len < split.min_len) {
    throw std::invalid_argument(where + "need 1 <= min_len <= max_len, got [" +
                                std::to_string(split.min_len) + ", " +
                                std::to_string(split.max_len) + "]");
  }
}

}  // namespace

// ---- names and vocabularies -----------------------------------------------------------------

FormalLanguage parse_formal_language(const std::string& name) {
  std::string valid;
  for (const auto& entry : kLanguages) {
    if (name == entry.name) return entry.language;
    valid += valid.empty() ? "" : ", ";
    valid += entry.name;
  }
  throw std::invalid_argument("unknown formal language '" + name + "'; valid names: " + valid);
}

std::string formal_language_name(FormalLanguage language) {
  for (const auto& entry : kLanguages) {
    if (entry.language == language) return entry.name;
  }
  throw std::invalid_argument("formal_language_name: invalid FormalLanguage value " +
                              std::to_string(static_cast<int>(language)));
}

std::vector<std::string> formal_vocabulary(FormalLanguage language) {
  if (is_dyck(language)) return {"a", "b", "<eos>"};
  return {"0", "1", "<eos>"};
}

FormalSpec default_formal_spec(FormalLanguage language, uint64_t seed) {
  if (is_dyck(language)) {
    return {language, seed, {5000, 2, 100}, {1000, 2, 100}, {1000, 101, 200}};
  }
  return {language, seed, {10000, 2, 50}, {2000, 2, 50}, {2000, 51, 100}};
}

// ---- formal-language sampling ---------------------------------------------------------------

bool formal_accepts(FormalLanguage language, const std::vector<uint32_t>& tokens) {
  const Dfa dfa = build_dfa(language);
  return dfa.accepting[run_dfa(dfa, tokens, language)];
}

std::vector<uint32_t> formal_label_sets(FormalLanguage language,
                                        const std::vector<uint32_t>& tokens) {
  const Dfa dfa = build_dfa(language);
  run_dfa(dfa, tokens, language);  // validates the ids
  std::vector<uint32_t> labels;
  labels.reserve(tokens.size());
  int q = dfa.start;
  for (uint32_t tok : tokens) {
    q = dfa.delta[q][tok];
    labels.push_back(dfa.label_set(q));
  }
  return labels;
}

std::vector<Example> generate_formal(FormalLanguage language, const FormalSplitSpec& split,
                                     uint64_t seed) {
  check_split(language, split);
  const Dfa dfa = build_dfa(language);
  const auto completions = completion_table(dfa, split.max_len);

  std::vector<int64_t> lengths;  // lengths in range that have at least one member
  for (int64_t n = split.min_len; n <= split.max_len; ++n) {
    if (completions[n][dfa.start] > 0.0) lengths.push_back(n);
  }
  if (lengths.empty()) {
    throw std::invalid_argument("formal language '" + formal_language_name(language) +
                                "' has no member with length in [" +
                                std::to_string(split.min_len) + ", " +
                                std::to_string(split.max_len) + "]");
  }

  std::mt19937_64 rng(seed);
  std::vector<Example> examples(static_cast<size_t>(split.count));
  for (Example& ex : examples) {
    const int64_t n = lengths[uniform_below(rng, lengths.size())];
    ex.tokens.reserve(n);
    ex.label_sets.reserve(n);
    int q = dfa.start;
    for (int64_t i = 0; i < n; ++i) {
      // Weight each symbol by the completions of the remaining n-i-1 positions: this makes the
      // whole string uniform among members of length n.
      const auto& row = completions[n - i - 1];
      std::array<double, kNumSymbols> weight{};
      double total = 0.0;
      for (uint32_t c = 0; c < kNumSymbols; ++c) {
        weight[c] = row[dfa.delta[q][c]];
        total += weight[c];
      }
      const double u = uniform01(rng) * total;
      uint32_t chosen = kNumSymbols;
      double cumulative = 0.0;
      for (uint32_t c = 0; c < kNumSymbols; ++c) {
        if (weight[c] <= 0.0) continue;
        chosen = c;  // rounding can leave u at the total; fall back to the last viable symbol
        cumulative += weight[c];
        if (u < cumulative) break;
      }
      q = dfa.delta[q][chosen];
      ex.tokens.push_back(chosen);
      ex.label_sets.push_back(dfa.label_set(q));
    }
  }
  return examples;
}

uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  // splitmix64 finaliser applied twice so nearby (seed, stream) pairs give unrelated seeds.
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return mix(mix(seed) ^ stream);
}

FormalDataset generate_formal_dataset(const FormalSpec& spec) {
  return {generate_formal(spec.language, spec.train, derive_seed(spec.seed, 0)),
          generate_formal(spec.language, spec.bin0, derive_seed(spec.seed, 1)),
          generate_formal(spec.language, spec.bin1, derive_seed(spec.seed, 2))};
}

// ---- copy task ------------------------------------------------------------------------------

std::vector<std::string> copy_vocabulary(int64_t alphabet) {
  if (alphabet < 1) {
    throw std::invalid_argument("copy task: alphabet must be >= 1, got " +
                                std::to_string(alphabet));
  }
  std::vector<std::string> vocab;
  vocab.reserve(static_cast<size_t>(alphabet) + 1);
  for (int64_t i = 0; i < alphabet; ++i) vocab.push_back("s" + std::to_string(i));
  vocab.push_back("<sep>");
  return vocab;
}

std::vector<Example> generate_copy(const CopySpec& spec) {
  if (spec.count < 0) {
    throw std::invalid_argument("copy task: count must be >= 0, got " + std::to_string(spec.count));
  }
  if (spec.alphabet < 1 || spec.pattern_len < 1) {
    throw std::invalid_argument("copy task: alphabet and pattern_len must be >= 1, got alphabet=" +
                                std::to_string(spec.alphabet) +
                                " pattern_len=" + std::to_string(spec.pattern_len));
  }
  if (spec.min_len <= spec.pattern_len || spec.max_len < spec.min_len) {
    throw std::invalid_argument("copy task: need pattern_len < min_len <= max_len, got " +
                                std::string("pattern_len=") + std::to_string(spec.pattern_len) +
                                " length range [" +
                                std::to_string(spec.min_len) + ", " +
                                std::to_string(spec.max_len) + "]");
  }
  const auto sep = static_cast<uint32_t>(spec.alphabet);
  const int64_t period = spec.pattern_len + 1;

  std::mt19937_64 rng(spec.seed);
  std::vector<Example> examples(static_cast<size_t>(spec.count));
  for (Example& ex : examples) {
    const int64_t len = uniform_in(rng, spec.min_len, spec.max_len);
    std::vector<uint32_t> pattern(static_cast<size_t>(spec.pattern_len));
    for (uint32_t& s : pattern) s = static_cast<uint32_t>(uniform_below(rng, sep));
    ex.tokens.resize(len);
    ex.loss_mask.assign(len, 0);
    for (int64_t t = 0; t < len; ++t) {
      const int64_t k = t % period;
      ex.tokens[t] = k == spec.pattern_len ? sep : pattern[k];
      // The first pattern is random; every later token (separators included) is implied by it.
      if (t + 1 >= spec.pattern_len && t + 1 < len) ex.loss_mask[t] = 1;
    }
  }
  return examples;
}

}  // namespace recur::data
