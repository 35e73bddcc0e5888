// Writes the synthetic task datasets (formal languages, copy task) in the shard format.
// Splits: train, valid and test; for formal languages valid is bin 0 and test is bin 1.
#pragma once

#include <string>

#include "data/manifest.h"
#include "data/synthetic.h"

namespace recur::data {

Manifest write_formal_dataset(const FormalSpec& spec, const std::string& out_dir, bool force);

struct CopyDatasetSpec {
  CopySpec base;  // count and seed are per split below
  int64_t train = 6400, valid = 640, test = 640;
};
Manifest write_copy_dataset(const CopyDatasetSpec& spec, const std::string& out_dir, bool force);

}  // namespace recur::data
