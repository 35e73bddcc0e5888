// `recur shard` (create / verify / dump) and `recur gen` (formal, copy): thin wrappers over src/data.
#include <cstdio>
#include <initializer_list>
#include <string>

#include <spdlog/spdlog.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "data/corpora.h"
#include "data/dataset.h"
#include "data/gen.h"

namespace recur::cli {
namespace {

void print_summary(const std::string& dir, const data::Manifest& m) {
  std::printf("dataset %s: corpus %s, vocabulary %llu, tokens uint%d, layout %s\n", dir.c_str(), m.corpus.c_str(),
              static_cast<unsigned long long>(m.vocab.size), 8 * m.token_bytes,
              m.layout == data::Layout::kStream ? "stream" : "examples");
  for (const char* name : {"train", "valid", "test"}) {
    auto it = m.splits.find(name);
    if (it == m.splits.end()) continue;
    const auto& s = it->second;
    if (m.layout == data::Layout::kStream) {
      std::printf("  %-5s %12llu tokens in %zu shard(s)\n", name, static_cast<unsigned long long>(s.tokens), s.shards.size());
    } else {
      std::printf("  %-5s %12llu tokens, %llu examples in %zu shard(s)\n", name, static_cast<unsigned long long>(s.tokens),
                  static_cast<unsigned long long>(s.examples), s.shards.size());
    }
  }
}

// The value of an enumerated option, named as formal_option_name writes it.
template <class E>
E choose(const Args& args, const std::string& option, std::initializer_list<E> values) {
  const std::string given = args.get(option);
  std::string valid;
  for (E v : values) {
    if (given == data::formal_option_name(v)) return v;
    valid += valid.empty() ? "" : " or ";
    valid += data::formal_option_name(v);
  }
  throw UsageError(fmt::format("--{} expects {}, got '{}'", option, valid, given));
}

int shard_verify(const Argv& argv) {
  Args args("recur shard verify DIR", "Recompute every checksum of a dataset and compare it with the manifest.");
  args.positional("DIR", "dataset directory");
  if (!args.parse(argv)) return 0;
  std::string dir = args.get("DIR");
  auto problems = data::verify_dataset(dir, true);
  if (problems.empty()) {
    std::printf("%s: OK\n", dir.c_str());
    return 0;
  }
  for (const auto& p : problems) std::fprintf(stderr, "FAILED: %s\n", p.c_str());
  std::fprintf(stderr, "recur shard verify: %zu problem(s) in %s\n", problems.size(), dir.c_str());
  return 1;
}

int shard_dump(const Argv& argv) {
  Args args("recur shard dump DIR --split {train,valid,test}",
            "Write one split's tokens to stdout in the corpus's own form: the original bytes for byte corpora\n"
            "(enwik8, bytes), the characters for text8, words with a newline per <eos> for WikiText-103,\n"
            "one line per example for line and synthetic corpora.");
  args.positional("DIR", "dataset directory").required("split", "NAME", "split to write (train, valid or test)");
  args.flag("verify", "verify checksums before dumping");
  if (!args.parse(argv)) return 0;
  auto ds = data::Dataset::open(args.get("DIR"), args.get_flag("verify"));
  data::dump_split(*ds, args.get("split"), stdout);
  if (std::fflush(stdout) != 0) fail("write error on stdout");
  return 0;
}

int shard_info(const Argv& argv) {
  Args args("recur shard info DIR", "Print a dataset's summary: corpus, vocabulary, splits and shards (sizes are checked).");
  args.positional("DIR", "dataset directory");
  if (!args.parse(argv)) return 0;
  auto ds = data::Dataset::open(args.get("DIR"), false);
  print_summary(args.get("DIR"), ds->manifest());
  return 0;
}

}  // namespace

int cmd_shard(const Argv& argv) {
  if (!argv.empty() && argv[0] == "info") return shard_info(Argv(argv.begin() + 1, argv.end()));
  if (!argv.empty() && argv[0] == "verify") return shard_verify(Argv(argv.begin() + 1, argv.end()));
  if (!argv.empty() && argv[0] == "dump") return shard_dump(Argv(argv.begin() + 1, argv.end()));
  Args args("recur shard --corpus KIND --input PATH... --out DIR [--shards N]\n"
            "       recur shard verify DIR\n"
            "       recur shard dump DIR --split {train,valid,test}\n"
            "       recur shard info DIR",
            "Turn a raw corpus into HDF5 shards plus DIR/manifest.json (checksummed, one global order).\n"
            "The dataset is built in DIR.tmp.<pid> and renamed when complete.");
  args.required("corpus", "KIND", "enwik8 | text8 | wikitext103 | bytes | lines")
      .list("input", "PATH", "corpus file(s); wikitext103 takes wiki.{train,valid,test}.tokens", true)
      .required("out", "DIR", "dataset directory to create")
      .option("shards", "N", "shards per split, at most 10000 (default: as many as needed for <= 64 Mi tokens each)", "0")
      .option("split-ratios", "T,V,E", "train,valid,test ratios for bytes/lines (and enwik8/text8 files under 10^8 bytes)",
              "0.9,0.05,0.05")
      .flag("force", "replace DIR if it exists (the old dataset is kept until the new one is complete)")
      .flag("quiet", "no progress line")
      .epilog(
          "Corpora:\n"
          "  enwik8       first 10^8 bytes, split 90M/5M/5M, every byte kept (vocabulary 256)\n"
          "  text8        same split, 27 symbols (a-z and space); any other character is an error\n"
          "  wikitext103  word level, vocabulary from train by frequency, <eos> at every line end\n"
          "  bytes        any files, concatenated in the order given, split by --split-ratios\n"
          "  lines        one example per line (bytes), lines split by --split-ratios");
  // sharding takes options only: a first word is a mistyped subcommand (`recur shard verfy DIR`)
  if (!argv.empty() && argv[0].rfind("-", 0) != 0) return subcommand_error("shard", args, argv, {"verify", "dump", "info"});
  if (!args.parse(argv)) return 0;
  data::ShardOptions o;
  o.corpus = args.get("corpus");
  o.inputs = args.get_list("input");
  o.out_dir = args.get("out");
  o.shards = args.get_int("shards");
  if (o.shards < 0 || o.shards > data::kMaxShards) {
    throw UsageError(fmt::format("--shards must be between 0 and {} (shards per split), got {}", data::kMaxShards, o.shards));
  }
  o.force = args.get_flag("force");
  o.progress = !args.get_flag("quiet");
  o.ratios = args.get_double_list("split-ratios");
  if (o.ratios.size() != 3) throw UsageError("--split-ratios expects three numbers like 0.9,0.05,0.05");
  data::Manifest m = data::shard_corpus(o);
  print_summary(o.out_dir, m);
  return 0;
}

int cmd_gen(const Argv& argv) {
  std::string usage =
      "recur gen formal --language {parity,tomita3,tomita5,tomita6,d2,d4} --out DIR [options]\n"
      "       recur gen copy --max-len L --out DIR [options]";
  if (argv.empty() || (argv[0] != "formal" && argv[0] != "copy")) {
    Args args(usage, "Write a synthetic task dataset (see `recur gen formal --help`, `recur gen copy --help`).");
    return subcommand_error("gen", args, argv, {"formal", "copy"});
  }
  Argv rest(argv.begin() + 1, argv.end());
  if (argv[0] == "formal") {
    Args args("recur gen formal --language NAME --out DIR [options]",
              "Formal-language dataset for next-character prediction (RSA paper, Table 2), drawn the way the\n"
              "code of Bhattamishra et al. (github:satwik77/Transformer-Formal-Languages) draws it: members\n"
              "only, geometric lengths, no string twice, bin 0 cut from the training list.\n"
              "Splits: train; valid = bin 0 (train lengths); test = bin 1 (longer strings).");
    args.required("language", "NAME", "parity | tomita3 | tomita5 | tomita6 | d2 | d4")
        .required("out", "DIR", "dataset directory to create")
        .option("seed", "N", "generator seed", "1")
        .option("train", "N", "training examples (default: 10000; 5000 for d2/d4)")
        .option("bin0", "N", "bin 0 examples (default: 2000; 1000 for d2/d4)")
        .option("bin1", "N", "bin 1 examples (default: 2000; 1000 for d2/d4)")
        .option("min-len", "N", "shortest train/bin 0 string (default 2)")
        .option("max-len", "N", "longest train/bin 0 string (default 50; 100 for d2/d4)")
        .option("bin1-min-len", "N", "shortest bin 1 string (default 51; 101 for d2/d4)")
        .option("bin1-max-len", "N", "longest bin 1 string (default 100; 200 for d2/d4)")
        .option("lengths", "LAW", "geometric | uniform (default: geometric; uniform for tomita3, as the reference)")
        .option("strings", "LAW", "reference | uniform", "reference")
        .option("duplicates", "drop|keep", "drop: no string twice, bin 0 cut from the training list", "drop")
        .option("targets", "KIND", "reference | next-set", "reference")
        .flag("force", "replace DIR if it exists")
        .epilog(
            "Laws (docs/data.md, 'Synthetic tasks'):\n"
            "  --lengths geometric   each symbol ends the string with probability 1/(L+1), L = (min+max)/2,\n"
            "                        capped at max (the reference's); uniform: over the lengths with members\n"
            "  --strings reference   parity, tomita5, tomita6: uniform strings, members kept (parity appends\n"
            "                        a 1 to a non-member); tomita3: built from runs as the reference does;\n"
            "                        d2, d4: as uniform. uniform: uniform among the members of the length\n"
            "  --duplicates keep     each split drawn on its own: repeats and train/bin 0 overlap possible\n"
            "  --targets reference   tomita3: bit c = appending c keeps a member; d2, d4: depth 0 -> a,\n"
            "                        between -> a and b, n -> b; neither has an <eos> bit. parity, tomita5,\n"
            "                        tomita6: as next-set. next-set: the symbols after which a member can\n"
            "                        still be reached, plus <eos> when the prefix is a member\n"
            "The generator before it followed the reference: --lengths uniform --strings uniform\n"
            "--duplicates keep --targets next-set.");
    if (!args.parse(rest)) return 0;
    data::FormalLanguage lang;
    try {
      lang = data::parse_formal_language(args.get("language"));
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    auto spec = data::default_formal_spec(lang, static_cast<uint64_t>(args.get_int("seed")));
    if (args.has("train")) spec.train.count = args.get_int("train");
    if (args.has("bin0")) spec.bin0.count = args.get_int("bin0");
    if (args.has("bin1")) spec.bin1.count = args.get_int("bin1");
    if (args.has("min-len")) spec.train.min_len = spec.bin0.min_len = args.get_int("min-len");
    if (args.has("max-len")) spec.train.max_len = spec.bin0.max_len = args.get_int("max-len");
    if (args.has("bin1-min-len")) spec.bin1.min_len = args.get_int("bin1-min-len");
    if (args.has("bin1-max-len")) spec.bin1.max_len = args.get_int("bin1-max-len");
    auto& o = spec.options;
    if (args.has("lengths")) {
      o.lengths = choose(args, "lengths", {data::FormalLengths::kGeometric, data::FormalLengths::kUniform});
    }
    o.strings = choose(args, "strings", {data::FormalStrings::kReference, data::FormalStrings::kUniformMember});
    o.targets = choose(args, "targets", {data::FormalTargets::kReference, data::FormalTargets::kNextSet});
    const std::string duplicates = args.get("duplicates");
    if (duplicates != "drop" && duplicates != "keep") {
      throw UsageError("--duplicates expects drop or keep, got '" + duplicates + "'");
    }
    o.distinct = duplicates == "drop";
    auto m = data::write_formal_dataset(spec, args.get("out"), args.get_flag("force"));
    print_summary(args.get("out"), m);
    return 0;
  }
  Args args("recur gen copy --max-len L --out DIR [options]",
            "Copy-task dataset (RSA paper, sequence-length scaling): a pattern of random symbols repeated,\n"
            "with a reserved separator between copies. loss_mask marks the positions whose next token is\n"
            "determined by the pattern (everything after the first copy).");
  args.required("max-len", "L", "longest example")
      .required("out", "DIR", "dataset directory to create")
      .option("min-len", "L", "shortest example (default: max-len)")
      .option("pattern-len", "N", "symbols in the repeated pattern", "10")
      .option("alphabet", "N", "distinct pattern symbols", "10")
      .option("train", "N", "training examples (paper: 6400 small, 12800 large)", "6400")
      .option("valid", "N", "validation examples", "640")
      .option("test", "N", "test examples", "640")
      .option("seed", "N", "generator seed", "1")
      .flag("force", "replace DIR if it exists");
  if (!args.parse(rest)) return 0;
  data::CopyDatasetSpec spec;
  spec.base.max_len = args.get_int("max-len");
  spec.base.min_len = args.has("min-len") ? args.get_int("min-len") : spec.base.max_len;
  spec.base.pattern_len = args.get_int("pattern-len");
  spec.base.alphabet = args.get_int("alphabet");
  spec.base.seed = static_cast<uint64_t>(args.get_int("seed"));
  spec.base.count = 0;
  spec.train = args.get_int("train");
  spec.valid = args.get_int("valid");
  spec.test = args.get_int("test");
  auto m = data::write_copy_dataset(spec, args.get("out"), args.get_flag("force"));
  print_summary(args.get("out"), m);
  return 0;
}

}  // namespace recur::cli
