// Generators for the synthetic tasks: formal languages (RSA section 4.2) and the copy task (4.4).
// Invariant: output is a pure function of the arguments, identical on every platform and compiler.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace recur::data {

// One variable-length example; which of the two target fields is filled depends on the task.
struct Example {
  std::vector<uint32_t> tokens;
  // Formal languages only: label_sets[t] is a bitmask over the vocabulary (bit i = symbol i) of
  // the symbols that may legally follow tokens[0..t]; the EOS bit means tokens[0..t] is a member.
  std::vector<uint32_t> label_sets;
  // Copy task only: 1 where tokens[t+1] is determined by the task (t+1 after the first pattern);
  // same size as tokens, last entry 0.
  std::vector<uint8_t> loss_mask;
};

// --------------------------------------------------------------------------------------------
// Formal languages (Bhattamishra et al. 2020, as used by the RSA paper)
// --------------------------------------------------------------------------------------------

enum class FormalLanguage { kParity, kTomita3, kTomita5, kTomita6, kD2, kD4 };

// Accepts "parity", "tomita3", "tomita5", "tomita6", "d2", "d4"; throws std::invalid_argument
// naming the valid ones otherwise.
FormalLanguage parse_formal_language(const std::string& name);
std::string formal_language_name(FormalLanguage language);

// {"0","1","<eos>"} for Parity/Tomita, {"a","b","<eos>"} for D_n; index = token id. EOS is the
// last id and appears only inside label_sets, never in tokens.
std::vector<std::string> formal_vocabulary(FormalLanguage language);

struct FormalSplitSpec {
  int64_t count;
  int64_t min_len;  // >= 1
  int64_t max_len;  // >= min_len
};

struct FormalSpec {
  FormalLanguage language;
  uint64_t seed;
  FormalSplitSpec train, bin0, bin1;
};

// Paper defaults. Parity/Tomita: train 10000 of [2,50], bin0 2000 of [2,50], bin1 2000 of
// [51,100]. D_n: train 5000 of [2,100], bin0 1000 of [2,100], bin1 1000 of [101,200].
FormalSpec default_formal_spec(FormalLanguage language, uint64_t seed);

// Each example: length uniform over the lengths in [min_len, max_len] that have members, then a
// string uniform over the members of that length. Throws std::invalid_argument if the range has
// no member at all or the split is malformed.
std::vector<Example> generate_formal(FormalLanguage language, const FormalSplitSpec& split,
                                     uint64_t seed);

// Splits drawn with one seed and the same length range are identical, so train and bin0 must not
// share a seed: this derives an independent seed per stream (splitmix64 of seed and stream).
uint64_t derive_seed(uint64_t seed, uint64_t stream);

struct FormalDataset {
  std::vector<Example> train, bin0, bin1;
};

// The three splits of spec, drawn with derive_seed(spec.seed, 0 / 1 / 2).
FormalDataset generate_formal_dataset(const FormalSpec& spec);

// Membership and per-position label sets by the language's DFA, exposed so tests can hold the DFA
// against an independent definition. Tokens must be symbol ids (< EOS id).
bool formal_accepts(FormalLanguage language, const std::vector<uint32_t>& tokens);
std::vector<uint32_t> formal_label_sets(FormalLanguage language,
                                        const std::vector<uint32_t>& tokens);

// --------------------------------------------------------------------------------------------
// Copy task
// --------------------------------------------------------------------------------------------

struct CopySpec {
  int64_t count;
  int64_t max_len;
  int64_t min_len;  // > pattern_len, so every example has at least one supervised position
  int64_t pattern_len = 10;
  int64_t alphabet = 10;
  uint64_t seed;
};

// "s0".."s{alphabet-1}" then "<sep>": the separator is the last id (= alphabet).
std::vector<std::string> copy_vocabulary(int64_t alphabet);

// Each example: pattern_len random symbols, then pattern SEP pattern SEP ... truncated to a length
// L uniform in [min_len, max_len].
std::vector<Example> generate_copy(const CopySpec& spec);

}  // namespace recur::data
