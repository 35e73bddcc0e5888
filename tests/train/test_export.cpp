// recur export and python/recur_torch.py: the safetensors layout, and the PyTorch loader's logits against
// Recur's on the same tokens (two segments, memory carried) for tiny trained transformer, xl and rsa_xl runs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>

#include <nlohmann/json.hpp>

#include "../common/runs.h"
#include "core/fs.h"
#include "core/process.h"
#include "data/h5.h"
#include "model/model.h"
#include "train/export.h"

namespace recur {
namespace {

std::string temp_dir(const std::string& tag) {
  std::string pattern = "/tmp/recur-" + tag + ".XXXXXX";
  char* made = mkdtemp(pattern.data());
  if (!made) throw std::runtime_error("mkdtemp failed");
  return made;
}

std::string venv_python() {
  const char* home = std::getenv("RECUR_HOME");
  const char* user = std::getenv("HOME");
  std::string root = home && *home ? home : std::string(user ? user : "") + "/.cache/recur";
  return root + "/venv/bin/python";
}

TEST(Export, SafetensorsHeaderIndexesEveryByte) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"b", torch::arange(6, torch::kFloat32).view({2, 3})}, {"a.x", torch::tensor({7.0f})}};
  std::string bytes = train::safetensors_bytes(tensors, {{"format", "pt"}});
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  ASSERT_EQ(n % 8, 0u);
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  EXPECT_EQ(header["a.x"]["data_offsets"], nlohmann::json({0, 4}));
  EXPECT_EQ(header["b"]["data_offsets"], nlohmann::json({4, 28}));
  EXPECT_EQ(header["b"]["shape"], nlohmann::json({2, 3}));
  EXPECT_EQ(header["b"]["dtype"], "F32");
  ASSERT_EQ(bytes.size(), 8 + n + 28);
  float b5 = 0;
  std::memcpy(&b5, bytes.data() + 8 + n + 4 + 5 * 4, 4);
  EXPECT_EQ(b5, 5.0f);
}

TEST(Export, PyTorchLoaderMatchesRecurLogits) {
  const std::string python = venv_python();
  ASSERT_TRUE(path_exists(python)) << python << " is missing: run scripts/setup (the venv with torch, h5py, numpy, safetensors)";
  const std::string dir = temp_dir("export");
  test::make_word_dataset(dir, {"the ", "cat ", "sat ", "on ", "a ", "mat. ", "Recur\n"}, 20000, 3);
  // The tiny configs, and variants: pre-LN with learned positions; every REM type but the dilated
  // cyclical ones with theta fixed, clamped positions and no relative term in the RSA heads.
  const std::vector<std::pair<std::string, std::vector<std::string>>> runs = {
      {"transformer", {}},
      {"xl", {}},
      {"rsa_xl", {}},
      {"transformer", {"model.pre_ln=true", "model.pos_enc=learned", "model.max_len=32"}},
      {"rsa_xl", {"model.n_rsa_heads=4", "model.rem_types=[1,1,1,1,0,0]", "model.dilations=[3]",
                  "model.rem_cyclical=fixed_theta", "model.rsa_drop_rel_pos=true", "model.clamp_len=10"}},
  };
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& [type, sets] = runs[i];
    SCOPED_TRACE(type + " " + std::to_string(i));
    const std::string run = dir + "/" + type + "." + std::to_string(i);
    std::vector<std::string> train = {RECUR_BINARY, "train", "--config", std::string(RECUR_SOURCE_DIR) + "/configs/tiny/" + type + ".yaml",
                                      "--run-dir", run, "--set", "data.path=" + dir + "/data", "--set", "train.steps=5"};
    for (const auto& s : sets) train.insert(train.end(), {"--set", s});
    auto trained = run_process(train);
    ASSERT_EQ(trained.exit_code, 0) << trained.output;
    auto exported = run_process({RECUR_BINARY, "export", "--run-dir", run, "--format", "h5"});
    ASSERT_EQ(exported.exit_code, 0) << exported.output;
    train::export_run(run, train::ExportFormat::kSafetensors, run);

    // Recur's logits for two segments of the same streams, memory carried: reference.h5 beside the model.
    auto loaded = train::load_run_on_cpu(run);
    torch::manual_seed(11);
    auto tokens = torch::randint(0, loaded.vocab_size, {2, 32}, torch::kInt64);
    torch::NoGradGuard no_grad;
    auto first = loaded.model->forward(tokens.slice(1, 0, 16), {});
    auto second = loaded.model->forward(tokens.slice(1, 16), first.state);
    const std::string ref = run + "/reference.h5";
    h5::Handle file = h5::create_file(ref);
    h5::write_array(file.get(), "tokens", h5::ElemType::kI64, {2, 32}, tokens.data_ptr<int64_t>(), ref);
    for (const auto& [name, out] : {std::pair{"logits.0", first}, std::pair{"logits.1", second}}) {
      auto logits = out.logits.contiguous();
      std::vector<uint64_t> dims(logits.sizes().begin(), logits.sizes().end());
      h5::write_array(file.get(), name, h5::ElemType::kF32, dims, logits.data_ptr<float>(), ref);
    }
    h5::close_file(file, ref);

    auto check = run_process({python, std::string(RECUR_SOURCE_DIR) + "/python/check_export.py", run, ref});
    EXPECT_EQ(check.exit_code, 0) << check.output;
    std::printf("%s", check.output.c_str());
  }
  run_process({"rm", "-rf", dir});
}

}  // namespace
}  // namespace recur
