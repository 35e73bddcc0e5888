// TensorBoard event files (RUN/tb/events.out.tfevents.<unix seconds>.<hostname>) written without
// TensorFlow: TFRecord framing of hand-encoded protobuf `Event` messages holding scalar summaries.
// Invariant: every record is framed as length, masked CRC32C(length), data, masked CRC32C(data), and
// the file's first record is the file_version event; readers reject a file that breaks either.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace recur::train {

// CRC32C (Castagnoli), as TFRecord frames records with ("123456789" -> 0xE3069283).
uint32_t crc32c(const std::string& bytes);
// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const std::string& bytes);
// One TFRecord: uint64 length, masked CRC of the length, data, masked CRC of the data (little-endian).
std::string tfrecord(const std::string& data);
// A serialized Event{wall_time=1, step=2, summary=5{value=1{tag=1, simple_value=2}}}.
std::string scalar_event(double wall_time, int64_t step, const std::vector<std::pair<std::string, float>>& scalars);

class TensorBoardWriter {
 public:
  // Creates `dir` and a new event file in it, starting with the file_version event ("brain.Event:2").
  explicit TensorBoardWriter(const std::string& dir);
  // Appends one event with these scalars at `step` and flushes it to disk.
  void scalars(int64_t step, const std::vector<std::pair<std::string, float>>& values);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace recur::train
