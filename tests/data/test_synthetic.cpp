// Tests for the synthetic-task generators, held against checkers written from the definitions.
// Invariant: nothing here may reuse the generator's DFAs; the checkers below are the reference.
#include "data/synthetic.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace recur::data {
namespace {

using Tokens = std::vector<uint32_t>;

constexpr uint32_t kEos = 2;  // last vocabulary id of every formal language
const std::vector<FormalLanguage> kAllLanguages = {
    FormalLanguage::kParity,  FormalLanguage::kTomita3, FormalLanguage::kTomita5,
    FormalLanguage::kTomita6, FormalLanguage::kD2,      FormalLanguage::kD4};

// ---- independent reference: membership straight from the definitions ------------------------

int64_t count_of(const Tokens& s, uint32_t symbol) {
  int64_t n = 0;
  for (uint32_t c : s) n += c == symbol;
  return n;
}

// Tomita 3: reject iff some maximal run of 1s of odd length is immediately followed by a maximal
// run of 0s of odd length (a run ending the string counts).
bool tomita3_member(const Tokens& s) {
  size_t prev_ones = 0;  // length of the previous run if it was a run of 1s, else 0
  for (size_t i = 0; i < s.size();) {
    size_t j = i;
    while (j < s.size() && s[j] == s[i]) ++j;
    const size_t run = j - i;
    if (s[i] == 0 && prev_ones % 2 == 1 && run % 2 == 1) return false;
    prev_ones = s[i] == 1 ? run : 0;
    i = j;
  }
  return true;
}

int dyck_depth(FormalLanguage lang) { return lang == FormalLanguage::kD2 ? 2 : 4; }

// True iff every prefix has depth in [0, max_depth] (a = open = 0, b = close = 1).
bool dyck_prefix_ok(const Tokens& s, int max_depth, int* final_depth) {
  int depth = 0;
  for (uint32_t c : s) {
    depth += c == 0 ? 1 : -1;
    if (depth < 0 || depth > max_depth) return false;
  }
  *final_depth = depth;
  return true;
}

bool is_member(FormalLanguage lang, const Tokens& s) {
  switch (lang) {
    case FormalLanguage::kParity:
      return count_of(s, 1) % 2 == 0;
    case FormalLanguage::kTomita3:
      return tomita3_member(s);
    case FormalLanguage::kTomita5:
      return count_of(s, 0) % 2 == 0 && count_of(s, 1) % 2 == 0;
    case FormalLanguage::kTomita6:
      return (count_of(s, 0) - count_of(s, 1)) % 3 == 0;
    case FormalLanguage::kD2:
    case FormalLanguage::kD4: {
      int depth = 0;
      return dyck_prefix_ok(s, dyck_depth(lang), &depth) && depth == 0;
    }
  }
  return false;
}

bool is_dyck(FormalLanguage lang) {
  return lang == FormalLanguage::kD2 || lang == FormalLanguage::kD4;
}

// Depth-first search for a suffix of at most `budget` symbols that makes buf a member. For D_n a
// branch is cut once the depth leaves [0, n], since no suffix can repair that.
bool completable(FormalLanguage lang, Tokens& buf, int budget) {
  if (is_dyck(lang)) {
    int depth = 0;
    if (!dyck_prefix_ok(buf, dyck_depth(lang), &depth)) return false;
  }
  if (is_member(lang, buf)) return true;
  if (budget == 0) return false;
  for (uint32_t c : {1u, 0u}) {  // closing first reaches Dyck members fastest
    buf.push_back(c);
    const bool ok = completable(lang, buf, budget - 1);
    buf.pop_back();
    if (ok) return true;
  }
  return false;
}

uint32_t reference_label_set(FormalLanguage lang, const Tokens& prefix) {
  const int budget = is_dyck(lang) ? 2 * dyck_depth(lang) + 6 : 6;
  uint32_t mask = is_member(lang, prefix) ? 1u << kEos : 0u;
  Tokens buf = prefix;
  for (uint32_t c = 0; c < 2; ++c) {
    buf.push_back(c);
    if (completable(lang, buf, budget)) mask |= 1u << c;
    buf.pop_back();
  }
  return mask;
}

std::vector<Tokens> all_strings(int64_t len) {
  std::vector<Tokens> out;
  for (uint64_t bits = 0; bits < (uint64_t{1} << len); ++bits) {
    Tokens s(len);
    for (int64_t i = 0; i < len; ++i) s[i] = (bits >> i) & 1u;
    out.push_back(s);
  }
  return out;
}

std::string describe(FormalLanguage lang, const Tokens& s) {
  const auto vocab = formal_vocabulary(lang);
  std::string out = formal_language_name(lang) + " \"";
  for (uint32_t c : s) out += vocab.at(c);
  return out + "\"";
}

// ---- the reference checkers agree with the definitions on hand-picked strings ----------------

TEST(ReferenceCheckers, HandPickedTomita3) {
  EXPECT_TRUE(tomita3_member({}));
  EXPECT_TRUE(tomita3_member({1, 1, 0}));        // even 1s then odd 0s
  EXPECT_TRUE(tomita3_member({1, 0, 0}));        // odd 1s then even 0s
  EXPECT_TRUE(tomita3_member({1}));              // odd 1s, nothing after
  EXPECT_FALSE(tomita3_member({1, 0}));          // odd 1s then odd 0s at the end
  EXPECT_FALSE(tomita3_member({0, 1, 1, 1, 0, 1}));
  EXPECT_TRUE(tomita3_member({1, 0, 0, 1, 1, 1}));
}

// ---- the generator's DFAs agree with the reference on every short string ---------------------

TEST(FormalDfa, AgreesWithReferenceOnAllShortStrings) {
  for (FormalLanguage lang : kAllLanguages) {
    for (int64_t len = 0; len <= 12; ++len) {
      for (const Tokens& s : all_strings(len)) {
        ASSERT_EQ(formal_accepts(lang, s), is_member(lang, s)) << describe(lang, s);
        if (len == 0) continue;
        // Every prefix is itself enumerated, so checking the last position covers all of them.
        const auto labels = formal_label_sets(lang, s);
        ASSERT_EQ(labels.size(), s.size());
        ASSERT_EQ(labels.back(), reference_label_set(lang, s)) << describe(lang, s);
      }
    }
  }
}

TEST(FormalDfa, RejectsNonSymbolTokens) {
  EXPECT_THROW(formal_accepts(FormalLanguage::kParity, {0, kEos}), std::invalid_argument);
  EXPECT_THROW(formal_label_sets(FormalLanguage::kD2, {0, 7}), std::invalid_argument);
}

// ---- sampled data --------------------------------------------------------------------------

void check_split(FormalLanguage lang, const FormalSplitSpec& split, uint64_t seed) {
  const auto examples = generate_formal(lang, split, seed);
  ASSERT_EQ(static_cast<int64_t>(examples.size()), split.count);
  std::set<int64_t> lengths_seen;
  for (const Example& ex : examples) {
    const auto n = static_cast<int64_t>(ex.tokens.size());
    ASSERT_GE(n, split.min_len);
    ASSERT_LE(n, split.max_len);
    if (is_dyck(lang)) {
      ASSERT_EQ(n % 2, 0);
    }
    lengths_seen.insert(n);
    ASSERT_TRUE(is_member(lang, ex.tokens)) << describe(lang, ex.tokens);
    ASSERT_TRUE(ex.loss_mask.empty());
    ASSERT_EQ(ex.label_sets.size(), ex.tokens.size());
    ASSERT_TRUE(ex.label_sets.back() & (1u << kEos));
    Tokens prefix;
    for (size_t t = 0; t < ex.tokens.size(); ++t) {
      prefix.push_back(ex.tokens[t]);
      ASSERT_EQ(ex.label_sets[t], reference_label_set(lang, prefix))
          << describe(lang, ex.tokens) << " position " << t;
    }
  }
  // Both ends of the length range are drawn (for D_n the nearest even lengths).
  const int64_t lo = is_dyck(lang) ? split.min_len + split.min_len % 2 : split.min_len;
  const int64_t hi = is_dyck(lang) ? split.max_len - split.max_len % 2 : split.max_len;
  if (lang != FormalLanguage::kTomita5) {  // Tomita 5 has only even lengths: checked below
    EXPECT_TRUE(lengths_seen.count(lo)) << formal_language_name(lang);
    EXPECT_TRUE(lengths_seen.count(hi)) << formal_language_name(lang);
  }
}

TEST(FormalGenerate, EveryStringAndLabelSetIsCorrectInBothBins) {
  for (FormalLanguage lang : kAllLanguages) {
    const FormalSpec spec = default_formal_spec(lang, 11);
    check_split(lang, {3000, spec.bin0.min_len, spec.bin0.max_len}, 1);
    check_split(lang, {3000, spec.bin1.min_len, spec.bin1.max_len}, 2);
  }
}

TEST(FormalGenerate, DefaultSpecsMatchThePaper) {
  for (FormalLanguage lang : kAllLanguages) {
    const FormalSpec s = default_formal_spec(lang, 5);
    EXPECT_EQ(s.language, lang);
    EXPECT_EQ(s.seed, 5u);
    if (is_dyck(lang)) {
      EXPECT_EQ(s.train.count, 5000);
      EXPECT_EQ(s.bin0.count, 1000);
      EXPECT_EQ(s.bin1.count, 1000);
      EXPECT_EQ(s.train.min_len, 2);
      EXPECT_EQ(s.train.max_len, 100);
      EXPECT_EQ(s.bin0.min_len, 2);
      EXPECT_EQ(s.bin0.max_len, 100);
      EXPECT_EQ(s.bin1.min_len, 101);
      EXPECT_EQ(s.bin1.max_len, 200);
    } else {
      EXPECT_EQ(s.train.count, 10000);
      EXPECT_EQ(s.bin0.count, 2000);
      EXPECT_EQ(s.bin1.count, 2000);
      EXPECT_EQ(s.train.min_len, 2);
      EXPECT_EQ(s.train.max_len, 50);
      EXPECT_EQ(s.bin0.min_len, 2);
      EXPECT_EQ(s.bin0.max_len, 50);
      EXPECT_EQ(s.bin1.min_len, 51);
      EXPECT_EQ(s.bin1.max_len, 100);
    }
  }
}

TEST(FormalGenerate, Vocabularies) {
  for (FormalLanguage lang : kAllLanguages) {
    const auto vocab = formal_vocabulary(lang);
    const std::vector<std::string> expected =
        is_dyck(lang) ? std::vector<std::string>{"a", "b", "<eos>"}
                      : std::vector<std::string>{"0", "1", "<eos>"};
    EXPECT_EQ(vocab, expected);
  }
}

// With fixed seeds these tolerances (about 5 standard deviations) are a guard against a biased
// sampler, not a flaky statistical test.
TEST(FormalGenerate, StringsAreUniformAmongMembersOfOneLength) {
  const std::vector<std::pair<FormalLanguage, int64_t>> cases = {
      {FormalLanguage::kParity, 4}, {FormalLanguage::kTomita3, 6}, {FormalLanguage::kTomita5, 6},
      {FormalLanguage::kTomita6, 6}, {FormalLanguage::kD2, 8},     {FormalLanguage::kD4, 8}};
  for (const auto& [lang, len] : cases) {
    std::set<Tokens> members;
    for (const Tokens& s : all_strings(len)) {
      if (is_member(lang, s)) members.insert(s);
    }
    const int64_t per_member = 1000;
    const auto draws = static_cast<int64_t>(members.size()) * per_member;
    std::map<Tokens, int64_t> freq;
    for (const Example& ex : generate_formal(lang, {draws, len, len}, 99)) ++freq[ex.tokens];
    ASSERT_EQ(freq.size(), members.size()) << formal_language_name(lang);
    for (const auto& [s, n] : freq) {
      ASSERT_TRUE(members.count(s));
      EXPECT_NEAR(n, per_member, 150) << describe(lang, s);
    }
  }
  // The brief's own example: Parity at length 4 has exactly 8 members.
  std::map<Tokens, int64_t> parity;
  for (const Example& ex : generate_formal(FormalLanguage::kParity, {8000, 4, 4}, 3)) {
    ++parity[ex.tokens];
  }
  EXPECT_EQ(parity.size(), 8u);
  for (const auto& [s, n] : parity) {
    EXPECT_NEAR(n, 1000, 150) << describe(FormalLanguage::kParity, s);
  }
}

TEST(FormalGenerate, LengthsAreUniformOverLengthsWithMembers) {
  // Tomita 5 has members only at even lengths; D_4 likewise.
  for (FormalLanguage lang : {FormalLanguage::kTomita5, FormalLanguage::kD4}) {
    std::map<int64_t, int64_t> freq;
    for (const Example& ex : generate_formal(lang, {25000, 3, 52}, 8)) ++freq[ex.tokens.size()];
    ASSERT_EQ(freq.size(), 25u) << formal_language_name(lang);
    for (const auto& [n, count] : freq) {
      EXPECT_EQ(n % 2, 0);
      EXPECT_NEAR(count, 1000, 150) << formal_language_name(lang) << " length " << n;
    }
  }
  std::map<int64_t, int64_t> freq;
  for (const Example& ex : generate_formal(FormalLanguage::kTomita3, {20000, 1, 20}, 8)) {
    ++freq[ex.tokens.size()];
  }
  ASSERT_EQ(freq.size(), 20u);
  for (const auto& [n, count] : freq) EXPECT_NEAR(count, 1000, 150) << "length " << n;
}

TEST(FormalGenerate, VeryLongStringsDoNotOverflow) {
  // 2^5000 strings of length 5000 would overflow a double without per-length rescaling.
  for (FormalLanguage lang : kAllLanguages) {
    for (const Example& ex : generate_formal(lang, {5, 4000, 5000}, 4)) {
      ASSERT_TRUE(is_member(lang, ex.tokens)) << formal_language_name(lang);
      ASSERT_EQ(ex.label_sets, formal_label_sets(lang, ex.tokens));
    }
  }
}

TEST(FormalGenerate, DeterministicFromSeed) {
  for (FormalLanguage lang : kAllLanguages) {
    const FormalSplitSpec split{200, 2, 60};
    const auto a = generate_formal(lang, split, 42);
    const auto b = generate_formal(lang, split, 42);
    const auto c = generate_formal(lang, split, 43);
    ASSERT_EQ(a.size(), b.size());
    bool differs = false;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].tokens, b[i].tokens);
      EXPECT_EQ(a[i].label_sets, b[i].label_sets);
      differs = differs || a[i].tokens != c[i].tokens;
    }
    EXPECT_TRUE(differs) << formal_language_name(lang);
  }
}

// FNV-1a over every token: pins the exact output so a change to the sampler (which would silently
// change every generated data set) has to be made on purpose. The three values were reproduced by
// an independent Python port (mt19937_64 + the same draws), which is what makes them portable.
uint64_t fingerprint(const std::vector<Example>& examples) {
  uint64_t h = 1469598103934665603ULL;
  for (const Example& ex : examples) {
    for (uint32_t tok : ex.tokens) h = (h ^ tok) * 1099511628211ULL;
    h = (h ^ 0xffu) * 1099511628211ULL;
  }
  return h;
}

TEST(FormalGenerate, OutputIsPinned) {
  EXPECT_EQ(fingerprint(generate_formal(FormalLanguage::kTomita3, {100, 2, 50}, 7)),
            4608267089015585639ULL);
  EXPECT_EQ(fingerprint(generate_formal(FormalLanguage::kD4, {100, 2, 100}, 7)),
            2737358137649437364ULL);
  EXPECT_EQ(fingerprint(generate_copy({100, 64, 12, 10, 10, 7})), 569514492152949303ULL);
}

TEST(FormalGenerate, DatasetSplitsUseDistinctSeeds) {
  const FormalDataset data =
      generate_formal_dataset(default_formal_spec(FormalLanguage::kParity, 1));
  ASSERT_EQ(data.train.size(), 10000u);
  ASSERT_EQ(data.bin0.size(), 2000u);
  ASSERT_EQ(data.bin1.size(), 2000u);
  // Same length range and a shared seed would make bin0 a copy of the head of train.
  int64_t same = 0;
  for (size_t i = 0; i < data.bin0.size(); ++i) same += data.bin0[i].tokens == data.train[i].tokens;
  EXPECT_LT(same, 50);
  EXPECT_NE(derive_seed(1, 0), derive_seed(1, 1));
  EXPECT_NE(derive_seed(1, 0), derive_seed(2, 0));
}

TEST(FormalGenerate, RejectsBadSplits) {
  EXPECT_THROW(generate_formal(FormalLanguage::kParity, {-1, 2, 5}, 0), std::invalid_argument);
  EXPECT_THROW(generate_formal(FormalLanguage::kParity, {10, 0, 5}, 0), std::invalid_argument);
  EXPECT_THROW(generate_formal(FormalLanguage::kParity, {10, 6, 5}, 0), std::invalid_argument);
  // Ranges holding no member: odd lengths for Tomita 5 and D_n, length 1 for Tomita 6.
  EXPECT_THROW(generate_formal(FormalLanguage::kTomita5, {10, 3, 3}, 0), std::invalid_argument);
  EXPECT_THROW(generate_formal(FormalLanguage::kD2, {10, 1, 1}, 0), std::invalid_argument);
  EXPECT_THROW(generate_formal(FormalLanguage::kTomita6, {10, 1, 1}, 0), std::invalid_argument);
  EXPECT_TRUE(generate_formal(FormalLanguage::kD2, {0, 2, 4}, 0).empty());
}

TEST(FormalNames, RoundTripAndRejectUnknown) {
  for (FormalLanguage lang : kAllLanguages) {
    EXPECT_EQ(parse_formal_language(formal_language_name(lang)), lang);
  }
  try {
    parse_formal_language("tomita4");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("tomita4"), std::string::npos) << msg;
    for (const char* name : {"parity", "tomita3", "tomita5", "tomita6", "d2", "d4"}) {
      EXPECT_NE(msg.find(name), std::string::npos) << msg;
    }
  }
  EXPECT_THROW(parse_formal_language("Parity"), std::invalid_argument);
  EXPECT_THROW(parse_formal_language(""), std::invalid_argument);
}

// ---- copy task -----------------------------------------------------------------------------

TEST(CopyTask, Vocabulary) {
  EXPECT_EQ(copy_vocabulary(3), (std::vector<std::string>{"s0", "s1", "s2", "<sep>"}));
  EXPECT_EQ(copy_vocabulary(10).size(), 11u);
  EXPECT_EQ(copy_vocabulary(10).back(), "<sep>");
  EXPECT_THROW(copy_vocabulary(0), std::invalid_argument);
}

void check_copy(const CopySpec& spec) {
  const auto examples = generate_copy(spec);
  ASSERT_EQ(static_cast<int64_t>(examples.size()), spec.count);
  const auto sep = static_cast<uint32_t>(spec.alphabet);
  std::set<int64_t> lengths;
  std::vector<int64_t> symbol_freq(spec.alphabet, 0);
  for (const Example& ex : examples) {
    const auto len = static_cast<int64_t>(ex.tokens.size());
    ASSERT_GE(len, spec.min_len);
    ASSERT_LE(len, spec.max_len);
    lengths.insert(len);
    ASSERT_TRUE(ex.label_sets.empty());
    ASSERT_EQ(ex.loss_mask.size(), ex.tokens.size());
    for (int64_t t = 0; t < len; ++t) {
      // Position t of copy k (k = t / (P+1)) is either the separator or pattern symbol t mod (P+1).
      const int64_t k = t % (spec.pattern_len + 1);
      if (t < spec.pattern_len) {
        ASSERT_LT(ex.tokens[t], sep);
        ++symbol_freq[ex.tokens[t]];
      } else if (k == spec.pattern_len) {
        ASSERT_EQ(ex.tokens[t], sep) << "t=" << t;
      } else {
        ASSERT_EQ(ex.tokens[t], ex.tokens[k]) << "t=" << t;
      }
      // Supervised exactly where the next token lies beyond the first pattern.
      const bool next_determined = t + 1 < len && t + 1 >= spec.pattern_len;
      ASSERT_EQ(ex.loss_mask[t], next_determined ? 1 : 0) << "t=" << t << " len=" << len;
    }
    ASSERT_EQ(ex.loss_mask.back(), 0);
  }
  EXPECT_TRUE(lengths.count(spec.min_len));
  EXPECT_TRUE(lengths.count(spec.max_len));
  const double expected = static_cast<double>(spec.count * spec.pattern_len) / spec.alphabet;
  for (int64_t f : symbol_freq) EXPECT_NEAR(f, expected, 0.15 * expected);
}

TEST(CopyTask, Structure) {
  check_copy({2000, 64, 12, 10, 10, 1});
  check_copy({2000, 512, 11, 10, 10, 2});
  check_copy({3000, 20, 4, 3, 5, 3});
  check_copy({500, 40, 40, 10, 10, 4});  // fixed length
}

TEST(CopyTask, DeterministicFromSeed) {
  const CopySpec spec{300, 128, 11, 10, 10, 9};
  CopySpec other = spec;
  other.seed = 10;
  const auto a = generate_copy(spec);
  const auto b = generate_copy(spec);
  const auto c = generate_copy(other);
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].tokens, b[i].tokens);
    EXPECT_EQ(a[i].loss_mask, b[i].loss_mask);
    differs = differs || a[i].tokens != c[i].tokens;
  }
  EXPECT_TRUE(differs);
}

TEST(CopyTask, RejectsBadSpecs) {
  EXPECT_THROW(generate_copy({-1, 64, 12, 10, 10, 0}), std::invalid_argument);
  EXPECT_THROW(generate_copy({10, 64, 10, 10, 10, 0}), std::invalid_argument);  // min_len <= P
  EXPECT_THROW(generate_copy({10, 11, 12, 10, 10, 0}), std::invalid_argument);  // max < min
  EXPECT_THROW(generate_copy({10, 64, 12, 0, 10, 0}), std::invalid_argument);
  EXPECT_THROW(generate_copy({10, 64, 12, 10, 0, 0}), std::invalid_argument);
}

}  // namespace
}  // namespace recur::data
