// Every corpus kind on small files in its real format: shard, dump each split, and get the source back
// (acceptance item 2); bad input fails with one clear error and leaves nothing behind.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "data/corpora.h"
#include "data/dataset.h"
#include "data/manifest.h"
#include "test_util.h"

namespace recur::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using test::error_of;
using test::TempDir;

class CorpusTest : public ::testing::Test {
 protected:
  ShardOptions options(const std::string& corpus, const std::vector<std::string>& inputs, int64_t shards = 0) {
    ShardOptions o;
    o.corpus = corpus;
    o.inputs = inputs;
    o.out_dir = out_;
    o.shards = shards;
    o.progress = false;
    return o;
  }
  std::string write(const std::string& name, const std::string& bytes) {
    std::string path = tmp_ / name;
    test::write_bytes(path, bytes);
    return path;
  }
  // The error of shard_corpus, after checking that it left neither the dataset nor a staging directory.
  std::string shard_error(const ShardOptions& o) {
    std::string msg = error_of([&] { shard_corpus(o); });
    EXPECT_FALSE(path_exists(out_)) << "a failed run left " << out_;
    EXPECT_EQ(test::entries_containing(tmp_.path(), ".tmp."), test::kNoLines);
    return msg;
  }
  uint64_t split_tokens(const Manifest& m, const std::string& split) const { return m.splits.at(split).tokens; }

  TempDir tmp_{"corpora"};
  std::string out_ = tmp_ / "ds";
};

// Split sizes by ratios: valid and test rounded down, train takes the rest.
std::vector<uint64_t> ratio_split(uint64_t n, double train, double valid, double test) {
  const double sum = train + valid + test;
  uint64_t v = static_cast<uint64_t>(n * valid / sum), t = static_cast<uint64_t>(n * test / sum);
  return {n - v - t, v, t};
}
std::vector<uint64_t> default_split(uint64_t n) { return ratio_split(n, 0.9, 0.05, 0.05); }

// ---- byte corpora ----------------------------------------------------------------------------

TEST_F(CorpusTest, Enwik8SmallFileRoundTripsEveryByte) {
  // Markup-like text with newlines, UTF-8 and arbitrary bytes >= 128 (and NUL).
  std::mt19937 rng(1);
  std::string src;
  while (src.size() < 60000) {
    switch (rng() % 4) {
      case 0: src += "<page>\n  <title>Anarchism</title>\n"; break;
      case 1: src += "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 [[link]]\n"; break;
      case 2: src += test::random_bytes(37, rng()); break;
      default: src += std::string(1, '\0') + "\xff\x80\n";
    }
  }
  Manifest m = shard_corpus(options("enwik8", {write("enwik8", src)}, 3));
  EXPECT_TRUE(m.vocab.bytes);
  EXPECT_EQ(m.vocab.size, 256u);
  EXPECT_EQ(m.token_bytes, 1);
  std::vector<uint64_t> sizes = default_split(src.size());
  EXPECT_EQ(split_tokens(m, "train"), sizes[0]);
  EXPECT_EQ(split_tokens(m, "valid"), sizes[1]);
  EXPECT_EQ(split_tokens(m, "test"), sizes[2]);
  for (const char* s : {"train", "valid", "test"}) EXPECT_THAT(m.splits.at(s).shards, SizeIs(3)) << s;
  ASSERT_THAT(m.sources, SizeIs(1));
  EXPECT_EQ(m.sources[0].size, src.size());
  EXPECT_EQ(m.sources[0].checksum, checksum_bytes(src.data(), src.size()));
  EXPECT_EQ(verify_dataset(out_, false), test::kNoLines);
  std::string dumped = test::dump_all_splits(out_);
  ASSERT_EQ(dumped.size(), src.size());
  EXPECT_TRUE(dumped == src) << "dump of enwik8 splits differs from the source";
}

TEST_F(CorpusTest, Text8RoundTripsAndHas27Symbols) {
  static const char* kWords[] = {"anarchism", "originated", "as", "a", "term", "of", "abuse", "first", "used",
                                 "against", "early", "working", "class", "radicals", "including", "the", "zebra"};
  std::mt19937 rng(2);
  std::string src;
  while (src.size() < 50000) src += std::string(" ") + kWords[rng() % (sizeof kWords / sizeof *kWords)];
  Manifest m = shard_corpus(options("text8", {write("text8", src)}, 2));
  EXPECT_FALSE(m.vocab.bytes);
  EXPECT_EQ(m.vocab.size, 27u);
  EXPECT_EQ(m.token_bytes, 1);
  ASSERT_THAT(m.vocab.symbols, SizeIs(27));
  EXPECT_EQ(m.vocab.symbols[0], " ");
  EXPECT_EQ(m.vocab.symbols[1], "a");
  EXPECT_EQ(m.vocab.symbols[26], "z");
  std::vector<uint64_t> sizes = default_split(src.size());
  EXPECT_EQ(split_tokens(m, "train"), sizes[0]);
  EXPECT_EQ(split_tokens(m, "test"), sizes[2]);
  // Token ids: space is 0, 'a' is 1 ("...anarchism" -> 0 1 14 ...).
  auto ds = Dataset::open(out_, true);
  std::vector<int64_t> first(4);
  ds->split("train").read_tokens(0, 4, first.data());
  std::vector<int64_t> expect;
  for (int i = 0; i < 4; ++i) expect.push_back(src[i] == ' ' ? 0 : 1 + (src[i] - 'a'));
  EXPECT_EQ(first, expect);
  EXPECT_EQ(test::dump_all_splits(out_), src);
}

TEST_F(CorpusTest, BytesConcatenatesItsInputsInOrder) {
  std::string a = test::random_bytes(30000, 3), b = test::random_bytes(12345, 4) + "\n";
  ShardOptions o = options("bytes", {write("a.bin", a), write("b.bin", b)}, 2);
  o.ratios = {0.8, 0.1, 0.1};
  Manifest m = shard_corpus(o);
  const uint64_t n = a.size() + b.size();
  std::vector<uint64_t> sizes = ratio_split(n, 0.8, 0.1, 0.1);
  EXPECT_EQ(split_tokens(m, "train"), sizes[0]);
  EXPECT_EQ(split_tokens(m, "valid"), sizes[1]);
  EXPECT_EQ(split_tokens(m, "test"), sizes[2]);
  ASSERT_THAT(m.sources, SizeIs(2));
  EXPECT_EQ(m.sources[0].size, a.size());
  EXPECT_EQ(m.sources[1].size, b.size());
  EXPECT_EQ(m.sources[1].checksum, checksum_bytes(b.data(), b.size()));
  EXPECT_TRUE(test::dump_all_splits(out_) == a + b) << "dump differs from the concatenated inputs";
}

TEST_F(CorpusTest, BytesSplitRatiosMustBeSane) {
  ShardOptions o = options("bytes", {write("a.bin", "abc")});
  o.ratios = {0.9, 0.1};
  EXPECT_THAT(shard_error(o), HasSubstr("three values"));
  o.ratios = {0.9, -0.1, 0.2};
  EXPECT_THAT(shard_error(o), HasSubstr("non-negative"));
}

// ---- lines -----------------------------------------------------------------------------------

std::string make_lines(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string text;
  for (int i = 0; i < n; ++i) {
    int len = i % 7 == 3 ? 0 : static_cast<int>(rng() % 30);  // some empty lines
    for (int c = 0; c < len; ++c) {
      char ch = static_cast<char>(rng() % 256);
      text += ch == '\n' ? '\xe9' : ch;
    }
    text += '\n';
  }
  return text;
}

TEST_F(CorpusTest, LinesWithFinalNewlineRoundTrip) {
  std::string src = make_lines(40, 5);
  Manifest m = shard_corpus(options("lines", {write("lines.txt", src)}));
  EXPECT_EQ(m.layout, Layout::kExamples);
  EXPECT_EQ(m.splits.at("train").examples, 36u);
  EXPECT_EQ(m.splits.at("valid").examples, 2u);
  EXPECT_EQ(m.splits.at("test").examples, 2u);
  auto ds = Dataset::open(out_, true);
  EXPECT_EQ(ds->split("train").example_length(3), 0u);  // the empty line is an (empty) example
  EXPECT_TRUE(test::dump_all_splits(out_) == src);
}

TEST_F(CorpusTest, LinesWithoutFinalNewlineRoundTrip) {
  std::string src = make_lines(40, 6);
  src.pop_back();
  shard_corpus(options("lines", {write("lines.txt", src)}));
  std::string dumped = test::dump_all_splits(out_);
  EXPECT_EQ(dumped.size(), src.size());
  EXPECT_TRUE(dumped == src);
}

// Disabled until the src bug is fixed: dump_split (src/data/corpora.cpp) treats only the split named
// "test" as the last one, so when test (and valid) hold no lines, train's dump gains a final newline
// that the source never had.
TEST_F(CorpusTest, LinesWithoutFinalNewlineAndEmptyLaterSplitsRoundTrip) {
  // 5 lines: valid and test get floor(0.25) = 0 lines, so train holds the corpus's last line.
  std::string src = "one\ntwo\n\nfour\nfive";
  Manifest m = shard_corpus(options("lines", {write("lines.txt", src)}));
  ASSERT_EQ(m.splits.at("train").examples, 5u);
  ASSERT_EQ(m.splits.at("test").examples, 0u);
  EXPECT_EQ(test::dump_all_splits(out_), src);
}

TEST_F(CorpusTest, LinesEndingInEmptyLinesRoundTrip) {
  // One shard per split of 3 tokens: "abc" fills the first, the empty lines make a shard of no tokens.
  std::string src = "abc\n\n\n";
  Manifest m = shard_corpus(options("lines", {write("lines.txt", src)}, 1));
  ASSERT_THAT(m.splits.at("train").shards, SizeIs(2));
  EXPECT_EQ(m.splits.at("train").shards[1].tokens, 0u);
  EXPECT_EQ(m.splits.at("train").shards[1].examples, 2u);
  EXPECT_EQ(verify_dataset(out_, false), test::kNoLines);
  EXPECT_EQ(test::dump_all_splits(out_), src);
}

TEST_F(CorpusTest, LinesFromTwoInputs) {
  std::string a = make_lines(20, 7), b = make_lines(20, 8);
  b.pop_back();
  shard_corpus(options("lines", {write("a.txt", a), write("b.txt", b)}));
  EXPECT_TRUE(test::dump_all_splits(out_) == a + b);
}

TEST_F(CorpusTest, LinesInputWithoutNewlineBeforeAnotherInputIsRejected) {
  std::string a = write("a.txt", "x\ny"), b = write("b.txt", "z\n");
  std::string msg = shard_error(options("lines", {a, b}));
  EXPECT_THAT(msg, HasSubstr(a));
  EXPECT_THAT(msg, HasSubstr("no newline"));
}

// ---- WikiText-103 ----------------------------------------------------------------------------

// A file in WikiText's layout: " = Title = ", blank lines of one space, " @-@ " and " @,@ " joiners.
std::string wiki_text(int paragraphs, uint32_t seed, const std::vector<std::string>& extra_words) {
  static const std::vector<std::string> kWords = {"the", "game", "was", "released", "in", "Japan", ",", ".",
                                                  "@-@", "@,@", "3", "000", "<unk>", "Valkyria", "Chronicles", "of"};
  std::mt19937 rng(seed);
  std::string text = " \n = Valkyria Chronicles III = \n \n";
  for (int p = 0; p < paragraphs; ++p) {
    text += " = = Section " + std::to_string(p % 3) + " = = \n \n";
    std::string line;
    int words = 5 + static_cast<int>(rng() % 40);
    for (int w = 0; w < words; ++w) {
      const std::string& word =
          !extra_words.empty() && rng() % 10 == 0 ? extra_words[rng() % extra_words.size()] : kWords[rng() % kWords.size()];
      line += " " + word;
    }
    text += line + " \n \n";
  }
  return text;
}

// Words of every line joined by single spaces, one "\n" per line; words outside `vocab` become <unk>.
std::string normalise(const std::string& text, const std::map<std::string, uint64_t>& vocab) {
  std::string out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string w, joined;
    while (words >> w) joined += (joined.empty() ? "" : " ") + (vocab.count(w) ? w : std::string("<unk>"));
    out += joined + "\n";
  }
  return out;
}

std::map<std::string, uint64_t> word_counts(const std::string& text) {
  std::map<std::string, uint64_t> counts;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string w;
    while (words >> w) ++counts[w];
    ++counts["<eos>"];
  }
  return counts;
}

TEST_F(CorpusTest, WikiText103RoundTripsNormalisedWithAFrequencyOrderedVocabulary) {
  TempDir files("wikitext-files");
  std::string train = wiki_text(60, 10, {});
  std::string valid = wiki_text(5, 11, {"Zanzibar"}), test = wiki_text(5, 12, {});
  auto put = [&](const std::string& name, const std::string& text) {
    test::write_bytes(files / name, text);
    return files / name;
  };
  // Inputs in any order: they are recognised by name.
  Manifest m = shard_corpus(options("wikitext103", {put("wiki.test.tokens", test), put("wiki.train.tokens", train),
                                                     put("wiki.valid.tokens", valid)}, 2));
  std::map<std::string, uint64_t> counts = word_counts(train);
  EXPECT_EQ(m.vocab.size, counts.size());
  EXPECT_EQ(m.vocab.file, "vocab.txt");
  EXPECT_EQ(m.token_bytes, 1);
  EXPECT_THAT(m.splits.at("train").shards, SizeIs(2));

  auto ds = Dataset::open(out_, true);
  std::vector<std::string> symbols = ds->symbols();
  ASSERT_EQ(symbols.size(), counts.size());
  EXPECT_NE(std::find(symbols.begin(), symbols.end(), "<eos>"), symbols.end());
  EXPECT_NE(std::find(symbols.begin(), symbols.end(), "@-@"), symbols.end());
  uint64_t most = 0;
  for (const auto& [w, c] : counts) most = std::max(most, c);
  EXPECT_EQ(counts.at(symbols[0]), most) << "most frequent word is not first";
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    ASSERT_TRUE(counts.count(symbols[i])) << symbols[i];
    EXPECT_GE(counts.at(symbols[i]), counts.at(symbols[i + 1])) << symbols[i] << " before " << symbols[i + 1];
  }
  // Every line ends in one <eos>: the train split holds words + lines tokens.
  EXPECT_EQ(ds->split("train").tokens(), [&] {
    uint64_t n = 0;
    for (const auto& [w, c] : counts) n += c;
    return n;
  }());

  EXPECT_EQ(test::dump_to_string(*ds, "train"), normalise(train, counts));
  std::string valid_dump = test::dump_to_string(*ds, "valid");
  EXPECT_EQ(valid_dump, normalise(valid, counts));
  EXPECT_THAT(valid_dump, HasSubstr("<unk>"));
  EXPECT_THAT(valid_dump, ::testing::Not(HasSubstr("Zanzibar")));
  EXPECT_EQ(test::dump_to_string(*ds, "test"), normalise(test, counts));
}

TEST_F(CorpusTest, WikiTextWithAnOutOfVocabularyWordAndNoUnkNamesFileAndLine) {
  TempDir files("wikitext-oov");
  test::write_bytes(files / "wiki.train.tokens", " a b \n c \n");
  test::write_bytes(files / "wiki.valid.tokens", " a \n b zebra \n");
  test::write_bytes(files / "wiki.test.tokens", " c \n");
  std::string msg = shard_error(
      options("wikitext103", {files / "wiki.train.tokens", files / "wiki.valid.tokens", files / "wiki.test.tokens"}));
  EXPECT_THAT(msg, HasSubstr(files / "wiki.valid.tokens"));
  EXPECT_THAT(msg, HasSubstr("line 2"));
  EXPECT_THAT(msg, HasSubstr("'zebra'"));
}

// ---- bad input -------------------------------------------------------------------------------

TEST_F(CorpusTest, MissingInputIsNamed) {
  std::string missing = tmp_ / "no-such-file";
  std::string msg = shard_error(options("bytes", {write("a.bin", "abc"), missing}));
  EXPECT_THAT(msg, HasSubstr(missing));
  EXPECT_THAT(msg, HasSubstr("does not exist"));
  EXPECT_THAT(shard_error(options("enwik8", {tmp_.path()})), HasSubstr("is a directory"));
}

TEST_F(CorpusTest, EmptyInputIsRejected) {
  std::string empty = write("empty.txt", "");
  for (const char* corpus : {"enwik8", "text8", "bytes", "lines"}) {
    std::string msg = shard_error(options(corpus, {empty}));
    EXPECT_THAT(msg, HasSubstr("empty")) << corpus;
    EXPECT_THAT(msg, HasSubstr(empty)) << corpus;
  }
  TempDir files("wikitext-empty");
  for (const char* name : {"wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"}) test::write_bytes(files / name, "");
  std::string msg = shard_error(
      options("wikitext103", {files / "wiki.train.tokens", files / "wiki.valid.tokens", files / "wiki.test.tokens"}));
  EXPECT_THAT(msg, HasSubstr("empty"));
  EXPECT_THAT(msg, HasSubstr("wiki.train.tokens"));
}

TEST_F(CorpusTest, Text8RejectsAnUppercaseLetterNamingFileAndOffset) {
  // Larger than the 4 MiB read block, with the bad byte in the second block and in the test split.
  std::string src;
  while (src.size() < 4500000) src += " anarchism originated";
  const size_t at = 4499993;
  src[at] = 'Q';
  std::string path = write("text8", src);
  std::string msg = shard_error(options("text8", {path}));
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("'Q'"));
  EXPECT_THAT(msg, HasSubstr("offset " + std::to_string(at)));
}

TEST_F(CorpusTest, Text8RejectsANewlineNamingFileAndOffset) {
  std::string src(3000, 'a');
  src[1234] = '\n';
  std::string path = write("text8", src);
  std::string msg = shard_error(options("text8", {path}));
  EXPECT_THAT(msg, HasSubstr(path));
  EXPECT_THAT(msg, HasSubstr("0x0a"));
  EXPECT_THAT(msg, HasSubstr("offset 1234"));
}

TEST_F(CorpusTest, WikiTextRejectsAWronglyNamedFile) {
  TempDir files("wikitext-names");
  for (const char* name : {"wiki.train.tokens", "wiki.valid.txt", "wiki.test.tokens"}) test::write_bytes(files / name, " a \n");
  std::string msg = shard_error(
      options("wikitext103", {files / "wiki.train.tokens", files / "wiki.valid.txt", files / "wiki.test.tokens"}));
  EXPECT_THAT(msg, HasSubstr(files / "wiki.valid.txt"));
  EXPECT_THAT(msg, HasSubstr("wiki.valid.tokens"));
  msg = shard_error(options("wikitext103", {files / "wiki.train.tokens", files / "wiki.test.tokens"}));
  EXPECT_THAT(msg, HasSubstr("wiki.valid.tokens"));
}

TEST_F(CorpusTest, Enwik8TakesExactlyOneInput) {
  std::string msg = shard_error(options("enwik8", {write("a", "abc"), write("b", "def")}));
  EXPECT_THAT(msg, HasSubstr("enwik8 takes exactly one input file, got 2"));
}

TEST_F(CorpusTest, UnknownCorpusNamesTheKinds) {
  std::string msg = shard_error(options("enwik9", {write("a", "abc")}));
  EXPECT_THAT(msg, HasSubstr("unknown corpus 'enwik9'"));
  EXPECT_THAT(msg, HasSubstr("enwik8, text8, wikitext103, bytes, lines"));
  EXPECT_THAT(corpus_kinds(), ElementsAre("enwik8", "text8", "wikitext103", "bytes", "lines"));
}

TEST_F(CorpusTest, ExistingOutputNeedsForce) {
  std::string in = write("a.bin", test::random_bytes(1000, 1));
  shard_corpus(options("bytes", {in}));
  std::string msg = error_of([&] { shard_corpus(options("bytes", {in})); });
  EXPECT_THAT(msg, HasSubstr("already exists"));
  std::string other = test::random_bytes(500, 2);
  ShardOptions o = options("bytes", {write("b.bin", other)});
  o.force = true;
  shard_corpus(o);
  EXPECT_TRUE(test::dump_all_splits(out_) == other);
}

}  // namespace
}  // namespace recur::data
