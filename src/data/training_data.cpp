// See training_data.h.
#include "data/training_data.h"

#include "core/config.h"
#include "core/error.h"
#include "core/fs.h"
#include "data/dataset.h"
#include "data/loaders.h"

namespace recur::data {

TrainingData open_training_data(const Config& config) {
  std::string path = expand_user(config.get_string("data.path"));
  TrainingData out;
  try {
    out.dataset = Dataset::open(path, config.get_bool("data.verify"));
  } catch (const Error& e) {
    fail("refusing to start training on data.path={}: {}", path, e.what());
  }
  const Split& train = out.dataset->split("train");
  out.train_tokens = usable_tokens(train.tokens(), config.get_float("data.fraction"));
  if (out.train_tokens == 0) {
    fail("data.fraction={} leaves no training tokens of the {} in {}", config.get_float("data.fraction"), train.tokens(), path);
  }
  return out;
}

}  // namespace recur::data
