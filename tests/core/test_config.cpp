// Strict configs: unknown keys, wrong types, ranges, choices, overrides, base files, round trip.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"

namespace recur {
namespace {

using ::testing::HasSubstr;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/recur-test-config-" + std::to_string(::getpid());
    make_dirs(dir_);
  }
  void TearDown() override { remove_tree(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    write_file_atomic(path, text);
    return path;
  }
  // The message of the Error `fn` throws ("" if none).
  template <typename Fn>
  std::string error_in(Fn&& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::string error_of(const std::string& path, const std::vector<std::string>& sets = {}) {
    return error_in([&] { Config::load(path, sets); });
  }
  std::string dir_;
};

TEST_F(ConfigTest, LoadsValuesAndFillsDefaults) {
  Config c = Config::load(write("a.yaml", "data:\n  path: /data/x\ntrain:\n  steps: 7\n  batch_size: 4\n"));
  EXPECT_EQ(c.get_string("data.path"), "/data/x");
  EXPECT_EQ(c.get_int("train.steps"), 7);
  EXPECT_EQ(c.get_int("train.batch_size"), 4);
  EXPECT_EQ(c.get_int("train.seed"), 1);               // default
  EXPECT_DOUBLE_EQ(c.get_float("data.fraction"), 1.0);  // default
  EXPECT_EQ(c.get_string("model.type"), "xl");
}

TEST_F(ConfigTest, UnknownKeyNamesKeyFileAndClosestKey) {
  std::string path = write("typo.yaml", "train:\n  step: 5\n");
  std::string err = error_of(path);
  EXPECT_THAT(err, HasSubstr("train.step"));
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("did you mean 'train.steps'"));
  EXPECT_THAT(error_of(write("sec.yaml", "trian:\n  steps: 5\n")), HasSubstr("unknown key 'trian'"));
}

TEST_F(ConfigTest, WrongTypeNamesKeyAndFile) {
  std::string path = write("type.yaml", "train:\n  steps: many\n");
  std::string err = error_of(path);
  EXPECT_THAT(err, HasSubstr("train.steps"));
  EXPECT_THAT(err, HasSubstr("integer"));
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(error_of(write("f.yaml", "train:\n  steps: 1.5\n")), HasSubstr("expects an integer"));
  EXPECT_THAT(error_of(write("b.yaml", "data:\n  verify: maybe\n")), HasSubstr("true or false"));
  EXPECT_THAT(error_of(write("m.yaml", "train: 5\n")), HasSubstr("unknown key 'train'"));
}

TEST_F(ConfigTest, RangeAndChoicesAreChecked) {
  EXPECT_THAT(error_of(write("r.yaml", "data:\n  fraction: 1.5\n")), HasSubstr("outside the allowed range"));
  EXPECT_THAT(error_of(write("r2.yaml", "train:\n  batch_size: 0\n")), HasSubstr("train.batch_size"));
  std::string err = error_of(write("c.yaml", "model:\n  type: lstm\n"));
  EXPECT_THAT(err, HasSubstr("model.type"));
  EXPECT_THAT(err, HasSubstr("rsa_xl"));
}

TEST_F(ConfigTest, OverridesApplyAfterFileAndAreChecked) {
  std::string path = write("o.yaml", "train:\n  steps: 5\n");
  Config c = Config::load(path, {"train.steps=9", "data.path=/x"});
  EXPECT_EQ(c.get_int("train.steps"), 9);
  EXPECT_EQ(c.get_string("data.path"), "/x");
  EXPECT_THAT(error_of(path, {"train.stesp=3"}), HasSubstr("did you mean 'train.steps'"));
  EXPECT_THAT(error_of(path, {"train.steps=abc"}), HasSubstr("--set train.steps=abc"));
  EXPECT_THAT(error_of(path, {"novalue"}), HasSubstr("section.key=value"));
}

TEST_F(ConfigTest, BaseFilesChainRelativeToTheIncludingFile) {
  make_dirs(dir_ + "/sub");
  write("base.yaml", "train:\n  steps: 3\n  seed: 42\n");
  std::string child = write("sub/child.yaml", "base: ../base.yaml\ntrain:\n  steps: 11\n");
  Config c = Config::load(child);
  EXPECT_EQ(c.get_int("train.steps"), 11);
  EXPECT_EQ(c.get_int("train.seed"), 42);
  std::string loop = write("loop.yaml", "base: loop.yaml\n");
  EXPECT_THAT(error_of(loop), HasSubstr("deeper than"));
  EXPECT_THAT(error_of(write("missing.yaml", "base: nope.yaml\n")), HasSubstr("does not exist"));
}

TEST_F(ConfigTest, MissingRequiredKeyIsAClearError) {
  Config c = Config::from_overrides({});
  EXPECT_FALSE(c.has("data.path"));
  try {
    c.get_string("data.path");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("data.path"));
    EXPECT_THAT(e.what(), HasSubstr("--set data.path="));
  }
}

TEST_F(ConfigTest, ResolvedConfigRoundTripsThroughSave) {
  Config c = Config::load(write("rt.yaml", "data:\n  path: \"/d: x\"\n  fraction: 0.25\ntrain:\n  steps: 12\n"));
  std::string saved = dir_ + "/resolved.yaml";
  c.save(saved);
  Config back = Config::load(saved);
  EXPECT_TRUE(back.diff(c).empty());
  EXPECT_EQ(back.get_string("data.path"), "/d: x");
  EXPECT_DOUBLE_EQ(back.get_float("data.fraction"), 0.25);
  Config other = Config::load(saved, {"train.steps=13"});
  EXPECT_EQ(other.diff(c), std::vector<std::string>{"train.steps"});
}

TEST_F(ConfigTest, InvalidYamlReportsLine) {
  std::string path = write("bad.yaml", "train:\n  steps: [1,\n");
  std::string err = error_of(path);
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("invalid YAML"));
}

TEST_F(ConfigTest, DuplicateKeysAreRejected) {
  std::string path = write("dup.yaml", "train:\n  steps: 1\n  steps: 2\n");
  std::string err = error_of(path);
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("key 'train.steps' is given twice (line 3)"));
  EXPECT_THAT(error_of(write("dup-section.yaml", "train:\n  steps: 1\ndata:\n  verify: true\ntrain:\n  seed: 2\n")),
              HasSubstr("key 'train' is given twice"));
  EXPECT_THAT(error_in([&] { Config::parse("eval:\n  batch_size: 1\n  batch_size: 1\n", "text"); }),
              HasSubstr("key 'eval.batch_size' is given twice"));
  // The same key in a base file and the file that extends it is an override, not a duplicate.
  write("base.yaml", "train:\n  steps: 1\n");
  EXPECT_EQ(Config::load(write("over.yaml", "base: base.yaml\ntrain:\n  steps: 2\n")).get_int("train.steps"), 2);
}

TEST_F(ConfigTest, ExtraYamlDocumentsAreRejected) {
  std::string path = write("two.yaml", "train:\n  steps: 1\n---\ntrain:\n  steps: 2\n");
  std::string err = error_of(path);
  EXPECT_THAT(err, HasSubstr(path));
  EXPECT_THAT(err, HasSubstr("holds 2 YAML documents"));
  EXPECT_THAT(error_in([&] { Config::parse("train:\n  steps: 1\n---\n", "text"); }), HasSubstr("YAML documents"));
  // A leading document marker alone is still one document.
  EXPECT_EQ(Config::load(write("one.yaml", "---\ntrain:\n  steps: 3\n")).get_int("train.steps"), 3);
}

TEST_F(ConfigTest, SizeLikeKeysAreBoundedWithAClearError) {
  EXPECT_THAT(error_of(write("threads.yaml", "train:\n  threads: 4\n"), {"train.threads=100000"}),
              HasSubstr("key 'train.threads' = 100000 is outside the allowed range [0, 1024]"));
  EXPECT_EQ(Config::from_overrides({"train.threads=64"}).get_int("train.threads"), 64);
  for (const char* key : {"data.prefetch", "model.n_layer", "model.n_head", "model.d_model", "model.d_inner",
                          "model.vocab_size", "model.mem_len", "train.batch_size", "train.tgt_len", "train.grad_accum",
                          "train.threads", "eval.batch_size", "eval.tgt_len", "eval.mem_len"}) {
    const KeySpec* spec = find_key_spec(key);
    ASSERT_NE(spec, nullptr) << key;
    ASSERT_TRUE(spec->max.has_value()) << key << " has no upper bound";
    std::string too_big = std::string(key) + "=" + std::to_string(static_cast<int64_t>(*spec->max) + 1);
    EXPECT_THAT(error_in([&] { Config::from_overrides({too_big}); }), HasSubstr("outside the allowed range")) << key;
  }
}

TEST_F(ConfigTest, ConfigThatIsADeviceIsRefused) {
  std::string path = dir_ + "/zero.yaml";
  ASSERT_EQ(::symlink("/dev/zero", path.c_str()), 0);
  EXPECT_THAT(error_of(path), HasSubstr("is not a regular file"));
}

TEST(ConfigSchema, EveryDefaultIsValidAndKeysAreUnique) {
  std::set<std::string> keys;
  for (const auto& s : config_schema()) {
    EXPECT_TRUE(keys.insert(s.key).second) << s.key;
    EXPECT_NE(s.key.find('.'), std::string::npos) << s.key;
    EXPECT_FALSE(s.help.empty()) << s.key;
  }
  EXPECT_NO_THROW(Config::from_overrides({}));
  for (const char* key : {"data.path", "model.type", "train.steps", "train.batch_size", "train.seed"}) {
    EXPECT_NE(find_key_spec(key), nullptr) << key;  // the CLI contract
  }
}

}  // namespace
}  // namespace recur
