// Formal-language and copy-task generators: each language is a small DFA; strings are drawn by the
// reference's laws (Bhattamishra et al.'s code) or uniformly among members, then labelled on the DFA.
// Invariant: only raw mt19937_64 draws feed sampling; std:: distributions differ across libraries.
#include "data/synthetic.h"

#include <algorithm>
#include <array>
#include <optional>
#include <random>
#include <set>
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
    return {language, seed, {5000, 2, 100}, {1000, 2, 100}, {1000, 101, 200},
            reference_formal_options(language)};
  }
  return {language, seed, {10000, 2, 50}, {2000, 2, 50}, {2000, 51, 100},
          reference_formal_options(language)};
}

// ---- options --------------------------------------------------------------------------------

FormalOptions reference_formal_options(FormalLanguage language) {
  FormalOptions o;
  if (language == FormalLanguage::kTomita3) o.lengths = FormalLengths::kUniform;
  return o;
}

FormalOptions uniform_formal_options() {
  return {FormalLengths::kUniform, FormalStrings::kUniformMember, false, FormalTargets::kNextSet};
}

const char* formal_option_name(FormalLengths value) {
  return value == FormalLengths::kGeometric ? "geometric" : "uniform";
}
const char* formal_option_name(FormalStrings value) {
  return value == FormalStrings::kReference ? "reference" : "uniform";
}
const char* formal_option_name(FormalTargets value) {
  return value == FormalTargets::kReference ? "reference" : "next-set";
}

// ---- labels ---------------------------------------------------------------------------------

namespace {

uint32_t label_set(const Dfa& dfa, int q, FormalLanguage language, FormalTargets targets) {
  const bool reference = targets == FormalTargets::kReference;
  // The reference's Tomita 3 counts the live but rejecting q3 as dead, so its bit for c says
  // whether appending c gives a member; its Tomita 3 and D_n targets have no end-of-string bit.
  const bool tomita3 = reference && language == FormalLanguage::kTomita3;
  const bool with_eos = !(tomita3 || (reference && is_dyck(language)));
  uint32_t mask = with_eos && dfa.accepting[q] ? (1u << kEosId) : 0u;
  for (uint32_t c = 0; c < kNumSymbols; ++c) {
    const int next = dfa.delta[q][c];
    if (tomita3 ? dfa.accepting[next] : dfa.live[next]) mask |= 1u << c;
  }
  return mask;
}

Example labelled(const Dfa& dfa, FormalLanguage language, FormalTargets targets,
                 std::vector<uint32_t> tokens) {
  Example ex;
  ex.label_sets.reserve(tokens.size());
  int q = dfa.start;
  for (uint32_t tok : tokens) {
    q = dfa.delta[q][tok];
    ex.label_sets.push_back(label_set(dfa, q, language, targets));
  }
  ex.tokens = std::move(tokens);
  return ex;
}

// ---- sampling -------------------------------------------------------------------------------

using Tokens = std::vector<uint32_t>;

// members[n] = number of strings of length n accepted (a double: 2^n outgrows any integer; past
// 2^1023 it is inf, which still compares as "plenty").
std::vector<double> member_counts(const Dfa& dfa, int64_t max_len) {
  std::vector<double> members(static_cast<size_t>(max_len) + 1, 0.0);
  std::vector<double> at(dfa.num_states(), 0.0), next(dfa.num_states());
  at[dfa.start] = 1.0;
  for (size_t n = 0;; ++n) {
    for (int q = 0; q < dfa.num_states(); ++q) members[n] += dfa.accepting[q] ? at[q] : 0.0;
    if (n + 1 == members.size()) break;
    std::fill(next.begin(), next.end(), 0.0);
    for (int q = 0; q < dfa.num_states(); ++q) {
      for (int to : dfa.delta[q]) next[to] += at[q];
    }
    at.swap(next);
  }
  return members;
}

std::string count_text(double n) {
  return n < 1e18 ? std::to_string(static_cast<int64_t>(n)) : std::string("more than 10^18");
}

// Draws the strings of one split: a length by the length law, then a string by the string law.
class SplitSampler {
 public:
  SplitSampler(FormalLanguage language, const Dfa& dfa, const FormalSplitSpec& split,
               const FormalOptions& options)
      : language_(language), dfa_(dfa), split_(split), options_(options) {
    check_split(language, split);
    members_ = member_counts(dfa, split.max_len);
    // Geometric: P(n) = r^n (1 - r) below max_len and r^max_len at it, r = L / (L + 1). Powers by
    // repeated multiplication, not pow(), so the table is the same on every platform.
    const int64_t half = (split.min_len + split.max_len) / 2;
    const double r = static_cast<double>(half) / static_cast<double>(half + 1);
    double power = 1.0, total = 0.0;
    for (int64_t n = 0; n <= split.max_len; ++n, power *= r) {
      if (n < split.min_len || !(members_[n] > 0.0)) continue;
      lengths_.push_back(n);
      total += n == split.max_len ? power : power * (1.0 - r);
      cumulative_.push_back(total);
    }
    if (lengths_.empty()) {
      throw std::invalid_argument("formal language '" + formal_language_name(language) +
                                  "' has no member with length in [" +
                                  std::to_string(split.min_len) + ", " +
                                  std::to_string(split.max_len) + "]");
    }
    if (uniform_members()) completions_ = completion_table(dfa, split.max_len);
  }

  // Distinct members with a length in range that are not already in `seen`.
  double available(const std::set<Tokens>& seen) const {
    double total = 0.0;
    for (int64_t n : lengths_) total += members_[n];
    for (const Tokens& s : seen) {
      const auto n = static_cast<int64_t>(s.size());
      total -= n >= split_.min_len && n <= split_.max_len ? 1.0 : 0.0;
    }
    return total;
  }

  // One attempt; empty when the string law rejects what it drew.
  std::optional<Tokens> draw(std::mt19937_64& rng) const {
    const int64_t n = draw_length(rng);
    if (uniform_members()) return draw_uniform_member(n, rng);
    if (language_ == FormalLanguage::kTomita3) return draw_tomita3_runs(n, rng);
    Tokens s(static_cast<size_t>(n));
    for (uint32_t& c : s) c = static_cast<uint32_t>(rng() >> 63);
    if (formal_member(s)) return s;
    if (language_ == FormalLanguage::kParity && n < split_.max_len) {
      s.push_back(1);
      return s;
    }
    return std::nullopt;
  }

 private:
  bool uniform_members() const {
    return options_.strings == FormalStrings::kUniformMember || is_dyck(language_);
  }

  bool formal_member(const Tokens& s) const {
    int q = dfa_.start;
    for (uint32_t c : s) q = dfa_.delta[q][c];
    return dfa_.accepting[q];
  }

  int64_t draw_length(std::mt19937_64& rng) const {
    if (options_.lengths == FormalLengths::kUniform) return lengths_[uniform_below(rng, lengths_.size())];
    const double u = uniform01(rng) * cumulative_.back();
    const size_t i = std::upper_bound(cumulative_.begin(), cumulative_.end(), u) - cumulative_.begin();
    return lengths_[std::min(i, lengths_.size() - 1)];  // rounding can leave u at the total
  }

  Tokens draw_uniform_member(int64_t n, std::mt19937_64& rng) const {
    Tokens s;
    s.reserve(static_cast<size_t>(n));
    int q = dfa_.start;
    for (int64_t i = 0; i < n; ++i) {
      // Weight each symbol by the completions of the remaining n-i-1 positions: this makes the
      // whole string uniform among members of length n.
      const auto& row = completions_[n - i - 1];
      std::array<double, kNumSymbols> weight{};
      double total = 0.0;
      for (uint32_t c = 0; c < kNumSymbols; ++c) {
        weight[c] = row[dfa_.delta[q][c]];
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
      q = dfa_.delta[q][chosen];
      s.push_back(chosen);
    }
    return s;
  }

  // The reference's Tomita 3 construction: pick a symbol; add a run of it whose length is uniform
  // over [0, what is left], except that 0s after an odd count of 1s take an even length. The count
  // of 1s restarts when a non-empty run of 1s follows 0s.
  Tokens draw_tomita3_runs(int64_t n, std::mt19937_64& rng) const {
    Tokens s;
    s.reserve(static_cast<size_t>(n));
    int last = -1;  // symbol of the last non-empty run
    int64_t ones = 0;
    while (static_cast<int64_t>(s.size()) != n) {
      const auto symbol = static_cast<uint32_t>(rng() >> 63);
      const int64_t left = n - static_cast<int64_t>(s.size());
      int64_t run = 0;
      if (symbol == 1) {
        run = uniform_in(rng, 0, left);
        ones = last == 0 && run != 0 ? run : ones + run;
      } else if (last == -1 || ones % 2 == 0) {
        run = uniform_in(rng, 0, left);
      } else {
        run = 2 * uniform_in(rng, 0, left / 2);
      }
      s.insert(s.end(), static_cast<size_t>(run), symbol);
      if (run != 0) last = static_cast<int>(symbol);
    }
    if (!formal_member(s)) throw std::logic_error("tomita3 run construction made a non-member");
    return s;
  }

  FormalLanguage language_;
  const Dfa& dfa_;
  FormalSplitSpec split_;
  FormalOptions options_;
  std::vector<double> members_;
  std::vector<int64_t> lengths_;     // lengths in range with members
  std::vector<double> cumulative_;  // geometric weights of lengths_, summed
  std::vector<std::vector<double>> completions_;
};

// A split's strings. With `seen` they are distinct and not in *seen (which collects them);
// `what` names the split in errors.
std::vector<Tokens> draw_strings(FormalLanguage language, const Dfa& dfa,
                                 const FormalSplitSpec& split, const FormalOptions& options,
                                 std::mt19937_64& rng, std::set<Tokens>* seen,
                                 const std::string& what) {
  const SplitSampler sampler(language, dfa, split, options);
  const std::string where = "formal language '" + formal_language_name(language) + "', " + what +
                            ": asked for " + std::to_string(split.count) +
                            " distinct strings with lengths in [" +
                            std::to_string(split.min_len) + ", " +
                            std::to_string(split.max_len) + "]";
  const double available = sampler.available(seen ? *seen : std::set<Tokens>{});
  if (seen && static_cast<double>(split.count) > available) {
    throw std::invalid_argument(where + ", but only " + count_text(available) +
                                (seen->empty() ? "" : " not already used by another split") +
                                " exist; lower the count, widen the lengths or allow duplicates");
  }
  // Rejection of repeats can stall when the length law seldom reaches the strings still unused:
  // give up after a generous number of draws instead of looping for ever.
  const int64_t max_draws = 1000000 + 1000 * split.count;
  std::vector<Tokens> out;
  out.reserve(static_cast<size_t>(split.count));
  for (int64_t draws = 0; static_cast<int64_t>(out.size()) < split.count; ++draws) {
    if (draws == max_draws) {
      throw std::invalid_argument(where + ", found only " + std::to_string(out.size()) +
                                  " after " + std::to_string(draws) + " draws (" +
                                  count_text(available) +
                                  " exist, but the length law seldom reaches the rest); lower "
                                  "the count or widen the lengths");
    }
    auto s = sampler.draw(rng);
    if (!s || (seen && !seen->insert(*s).second)) continue;
    out.push_back(std::move(*s));
  }
  return out;
}

// Labels strings[begin, end), moving the strings out.
std::vector<Example> labelled_all(FormalLanguage language, const Dfa& dfa, FormalTargets targets,
                                  std::vector<Tokens>& strings, size_t begin, size_t end) {
  std::vector<Example> out;
  out.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) out.push_back(labelled(dfa, language, targets, std::move(strings[i])));
  return out;
}

}  // namespace

// ---- formal-language sampling ---------------------------------------------------------------

bool formal_accepts(FormalLanguage language, const std::vector<uint32_t>& tokens) {
  const Dfa dfa = build_dfa(language);
  return dfa.accepting[run_dfa(dfa, tokens, language)];
}

std::vector<uint32_t> formal_label_sets(FormalLanguage language, const std::vector<uint32_t>& tokens,
                                        FormalTargets targets) {
  const Dfa dfa = build_dfa(language);
  run_dfa(dfa, tokens, language);  // validates the ids
  return labelled(dfa, language, targets, tokens).label_sets;
}

std::vector<Example> generate_formal(FormalLanguage language, const FormalSplitSpec& split,
                                     uint64_t seed, const FormalOptions& options) {
  const Dfa dfa = build_dfa(language);
  std::mt19937_64 rng(seed);
  std::set<Tokens> seen;
  auto strings = draw_strings(language, dfa, split, options, rng, options.distinct ? &seen : nullptr,
                              "one split");
  return labelled_all(language, dfa, options.targets, strings, 0, strings.size());
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
  const FormalOptions& o = spec.options;
  if (!o.distinct) {
    return {generate_formal(spec.language, spec.train, derive_seed(spec.seed, 0), o),
            generate_formal(spec.language, spec.bin0, derive_seed(spec.seed, 1), o),
            generate_formal(spec.language, spec.bin1, derive_seed(spec.seed, 2), o)};
  }
  if (spec.train.min_len != spec.bin0.min_len || spec.train.max_len != spec.bin0.max_len) {
    throw std::invalid_argument(
        "formal language '" + formal_language_name(spec.language) +
        "': with distinct strings bin 0 is cut from the training list, so it needs train's length "
        "range [" + std::to_string(spec.train.min_len) + ", " + std::to_string(spec.train.max_len) +
        "], got [" + std::to_string(spec.bin0.min_len) + ", " + std::to_string(spec.bin0.max_len) + "]");
  }
  check_split(spec.language, spec.train);
  check_split(spec.language, spec.bin0);
  const Dfa dfa = build_dfa(spec.language);
  std::set<Tokens> seen;
  std::mt19937_64 rng(derive_seed(spec.seed, 0));
  const FormalSplitSpec both{spec.train.count + spec.bin0.count, spec.train.min_len, spec.train.max_len};
  auto list = draw_strings(spec.language, dfa, both, o, rng, &seen,
                           "train + bin 0 (" + std::to_string(spec.train.count) + " + " +
                               std::to_string(spec.bin0.count) + ")");
  if (!is_dyck(spec.language) && spec.language != FormalLanguage::kParity) {
    // The reference passes its Tomita list through a set before the cut: an arbitrary order,
    // so train and bin 0 get the same length mix. Fisher-Yates with the portable draw.
    for (size_t i = list.size(); i > 1; --i) std::swap(list[i - 1], list[uniform_below(rng, i)]);
  }
  std::mt19937_64 rng1(derive_seed(spec.seed, 2));
  auto bin1 = draw_strings(spec.language, dfa, spec.bin1, o, rng1, &seen, "bin 1");
  const auto cut = static_cast<size_t>(spec.train.count);
  FormalDataset data;
  data.train = labelled_all(spec.language, dfa, o.targets, list, 0, cut);
  data.bin0 = labelled_all(spec.language, dfa, o.targets, list, cut, list.size());
  data.bin1 = labelled_all(spec.language, dfa, o.targets, bin1, 0, bin1.size());
  return data;
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
