// See run_check.h.
#include "train/run_check.h"

#include <torch/torch.h>

#include <algorithm>
#include <string>

#include "core/config.h"
#include "core/error.h"
#include "data/dataset.h"
#include "model/model.h"

namespace recur::train {
namespace {

bool xl_with_memory(const Config& c) {
  const std::string t = c.get_string("model.type");
  return (t == "xl" || t == "rsa_xl" || t == "tl_xl" || t == "fl_xl") && c.get_int("model.mem_len") > 0;
}

void check_eval(const Config& c, const EvalSettings& s, const char* which) {
  const std::string type = c.get_string("model.type");
  const int64_t T = c.get_int("train.tgt_len");
  if (s.tgt_len < 1) fail("config error: {} evaluation segment length is {}", which, s.tgt_len);
  if (s.mem_len < 0) fail("config error: {} evaluation memory length is {}", which, s.mem_len);
  if (c.get_int("eval.score_last") > s.tgt_len) {
    fail("config error: eval.score_last = {} exceeds the {} evaluation window of {} tokens (eval.tgt_len)",
         c.get_int("eval.score_last"), which, s.tgt_len);
  }
  const bool brt = type == "brt" || type == "rsa_brt";
  if (brt && s.tgt_len % c.get_int("model.brt_window") != 0) {
    fail("config error: a BRT evaluates whole windows of model.brt_window = {}; the {} evaluation uses segments of {}: "
         "set {} to a multiple of {}", c.get_int("model.brt_window"), which, s.tgt_len,
         std::string(which) == "final" ? "eval.tgt_len" : "eval.train_tgt_len", c.get_int("model.brt_window"));
  }
  if (type == "fl_xl" && s.tgt_len > T) {
    fail("config error: fl_xl learns one matrix row per query of the training segment (train.tgt_len = {}); the {} "
         "evaluation uses segments of {}: set {} <= {}", T, which, s.tgt_len,
         std::string(which) == "final" ? "eval.tgt_len" : "eval.train_tgt_len", T);
  }
}

}  // namespace

EvalSettings final_eval_settings(const Config& c) {
  EvalSettings s;
  s.tgt_len = c.get_int("eval.tgt_len") > 0 ? c.get_int("eval.tgt_len") : c.get_int("train.tgt_len");
  s.mem_len = c.get_int("eval.mem_len") >= 0 ? c.get_int("eval.mem_len") : c.get_int("model.mem_len");
  s.clamp_len = c.get_int("eval.clamp_len") >= 0 ? c.get_int("eval.clamp_len") : c.get_int("model.clamp_len");
  s.same_length = c.get_bool("eval.same_length");
  return s;
}

EvalSettings periodic_eval_settings(const Config& c) {
  EvalSettings s = final_eval_settings(c);
  const int64_t T = c.get_int("train.tgt_len"), M = c.get_int("model.mem_len");
  if (xl_with_memory(c)) {  // the reference's training loop
    s.tgt_len = std::min<int64_t>(128, T);
    s.mem_len = M + T - s.tgt_len;
    s.clamp_len = c.get_int("model.clamp_len");
  }
  if (c.get_int("eval.train_tgt_len") > 0) {
    s.tgt_len = c.get_int("eval.train_tgt_len");
    if (xl_with_memory(c)) s.mem_len = M + T - s.tgt_len;
  }
  if (c.get_int("eval.train_mem_len") >= 0) s.mem_len = c.get_int("eval.train_mem_len");
  s.same_length = c.get_bool("eval.train_same_length");
  return s;
}

Config with_eval_settings(const Config& c, const EvalSettings& s) {
  Config out = c;
  out.set("eval.tgt_len", std::to_string(s.tgt_len));
  out.set("eval.mem_len", std::to_string(s.mem_len));
  out.set("eval.clamp_len", std::to_string(s.clamp_len));
  out.set("eval.same_length", s.same_length ? "true" : "false");
  return out;
}

void check_eval_settings(const Config& c) {
  check_eval(c, final_eval_settings(c), "final");
  const bool every_epoch = c.get_bool("eval.every_epoch");
  if (c.get_int("train.eval_every") > 0 || every_epoch) check_eval(c, periodic_eval_settings(c), "during-training");
  const double stop_at = c.get_float("train.stop_at_mean_accuracy");
  if (stop_at > 0 && !every_epoch) {
    fail("config error: train.stop_at_mean_accuracy = {} needs eval.every_epoch: true (the mean is taken over valid and "
         "eval.extra_splits at each epoch's evaluation)", stop_at);
  }
}

void check_splits(const Config& c, const data::Dataset& ds) {
  std::vector<std::string> needed = {"train", "valid"};
  for (const auto& s : c.get_string_list("eval.extra_splits")) needed.push_back(s);
  for (size_t i = 0; i < needed.size(); ++i) {
    if (ds.has_split(needed[i])) continue;
    fail("{}: the dataset {} has no split '{}' (needed for {}); its splits are listed in {}/manifest.json",
         i < 2 ? "config error" : "config error in eval.extra_splits", ds.dir(), needed[i],
         i == 0 ? "training" : i == 1 ? "evaluation" : "the final evaluation", ds.dir());
  }
}

void check_run_config(const Config& c, int64_t vocab) {
  check_eval_settings(c);
  model::make_model(c, vocab);  // every check of the factory, the evaluation settings it reads included
}

}  // namespace recur::train
