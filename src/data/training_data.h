// The one place training opens its data: data.path from the config, verified per data.verify, with the
// train split limited by data.fraction. Training refuses to start on a dataset that fails verification.
#pragma once

#include <cstdint>
#include <memory>

namespace recur {
class Config;
}

namespace recur::data {

class Dataset;

struct TrainingData {
  std::shared_ptr<Dataset> dataset;
  uint64_t train_tokens = 0;  // tokens of the train split in use (after data.fraction)
};

TrainingData open_training_data(const Config& config);

}  // namespace recur::data
