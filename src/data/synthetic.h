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
  // Formal languages only: label_sets[t] is a bitmask over the vocabulary (bit i = symbol i) for
  // the prefix tokens[0..t]; what the bits mean is FormalTargets.
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

// How the strings of a split are drawn and labelled. The defaults (reference_formal_options) follow
// the code of Bhattamishra et al. (github:satwik77/Transformer-Formal-Languages); every other value
// is this project's earlier generator, kept for comparison.
enum class FormalLengths {
  // The reference's: a string grows one symbol at a time and stops with probability 1/(L+1),
  // L = (min_len + max_len) / 2 (integer division), capped at max_len; lengths below min_len are
  // redrawn. Lengths without members are never drawn.
  kGeometric,
  kUniform,  // uniform over the lengths in [min_len, max_len] that have members
};
enum class FormalStrings {
  // Parity, Tomita 5/6: a uniform string of the drawn length, kept only if it is a member, except
  // that Parity repairs a non-member shorter than max_len by appending a 1. Tomita 3: the
  // reference's construction from runs (a run's length is uniform over what is left). D_n: as
  // kUniformMember, since the reference's construction cannot make enough distinct strings.
  kReference,
  kUniformMember,  // uniform among the members of the drawn length (exact counting on the DFA)
};
enum class FormalTargets {
  // Tomita 3: bit c set iff prefix + c is a member (the reference marks q3 and q4 dead), no <eos>.
  // D_n: bit a iff depth < n, bit b iff depth > 0 (depth 0 "10", between "11", n "01"), no <eos>.
  // Parity, Tomita 5/6: as kNextSet, whose <eos> bit is the reference's membership bit.
  kReference,
  kNextSet,  // symbols after which a member is still reachable, plus <eos> when the prefix is one
};
struct FormalOptions {
  FormalLengths lengths = FormalLengths::kGeometric;
  FormalStrings strings = FormalStrings::kReference;
  // True: no string occurs twice in the dataset, and bin 0 is the tail of one list whose head is
  // train (so the two share a length range). False: each split drawn on its own, repeats allowed.
  bool distinct = true;
  FormalTargets targets = FormalTargets::kReference;
};

// The reference's choices for a language: uniform lengths for Tomita 3 (its construction draws the
// length uniformly), geometric for the others.
FormalOptions reference_formal_options(FormalLanguage language);
// The generator this project had before following the reference: uniform lengths, uniform members,
// repeats allowed, next-set targets.
FormalOptions uniform_formal_options();

// Names used on the command line and in manifests: geometric|uniform, reference|uniform,
// reference|next-set.
const char* formal_option_name(FormalLengths value);
const char* formal_option_name(FormalStrings value);
const char* formal_option_name(FormalTargets value);

struct FormalSpec {
  FormalLanguage language;
  uint64_t seed;
  FormalSplitSpec train, bin0, bin1;
  FormalOptions options;
};

// Paper defaults with reference_formal_options. Parity/Tomita: train 10000 of [2,50], bin0 2000
// of [2,50], bin1 2000 of [51,100]. D_n: train 5000 of [2,100], bin0 1000 of [2,100], bin1 1000 of
// [101,200].
FormalSpec default_formal_spec(FormalLanguage language, uint64_t seed);

// One split drawn with its own generator seeded by seed. With options.distinct the strings are
// distinct. Throws std::invalid_argument if the range has no member, the split is malformed, or
// fewer distinct strings can be found than asked (naming the language, the count and how many exist).
std::vector<Example> generate_formal(FormalLanguage language, const FormalSplitSpec& split,
                                     uint64_t seed, const FormalOptions& options);

// Derives an independent seed per stream (splitmix64 of seed and stream).
uint64_t derive_seed(uint64_t seed, uint64_t stream);

struct FormalDataset {
  std::vector<Example> train, bin0, bin1;
};

// With options.distinct (the reference's protocol): train + bin0 are one list of distinct strings
// drawn with derive_seed(spec.seed, 0) and cut in two (for Tomita shuffled first, as the
// reference's set() does); bin1 is drawn with derive_seed(spec.seed, 2) and shares no string with
// them. Otherwise the three splits are generate_formal with derive_seed(spec.seed, 0 / 1 / 2).
FormalDataset generate_formal_dataset(const FormalSpec& spec);

// Membership and per-position label sets by the language's DFA, exposed so tests can hold the DFA
// against an independent definition. Tokens must be symbol ids (< EOS id).
bool formal_accepts(FormalLanguage language, const std::vector<uint32_t>& tokens);
std::vector<uint32_t> formal_label_sets(FormalLanguage language, const std::vector<uint32_t>& tokens,
                                        FormalTargets targets);

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
