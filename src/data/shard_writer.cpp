// See shard_writer.h. Tokens are narrowed to the manifest's token width here, once, so the stored
// bytes (and therefore the checksums) are exactly what readers map.
#include "data/shard_writer.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/hash.h"
#include "data/h5.h"
#include "data/synthetic.h"

namespace recur::data {

struct DatasetWriter::Shard {
  std::string file;
  std::string path;
  h5::Handle h5file, tokens, offsets, labels, loss_mask;
  Hasher token_hash;
  uint64_t first_token = 0, first_example = 0;
  uint64_t tokens_written = 0, examples = 0;
  std::vector<uint8_t> token_buf, label_buf, mask_buf;
  std::vector<uint64_t> offset_buf;  // examples layout: end offsets (relative to the shard)
};

namespace {

void put_le(std::vector<uint8_t>* buf, uint32_t value, int bytes) {
  for (int b = 0; b < bytes; ++b) buf->push_back(static_cast<uint8_t>(value >> (8 * b)));
}

}  // namespace

DatasetWriter::DatasetWriter(const std::string& out_dir, Manifest manifest, bool force)
    : staging_(out_dir, force), manifest_(std::move(manifest)) {
  manifest_.splits.clear();
}

DatasetWriter::~DatasetWriter() = default;

void DatasetWriter::begin_split(const std::string& name, uint64_t shard_tokens) {
  if (!split_.empty()) fail("internal error: split {} still open", split_);
  split_ = name;
  shard_tokens_ = std::max<uint64_t>(1, shard_tokens);
  split_tokens_ = split_examples_ = 0;
  shards_.clear();
}

void DatasetWriter::open_shard() {
  shard_ = std::make_unique<Shard>();
  shard_->file = fmt::format("{}-{:05d}.h5", split_, shards_.size());
  shard_->path = staging_.path() + "/" + shard_->file;
  shard_->first_token = split_tokens_;
  shard_->first_example = split_examples_;
  shard_->h5file = h5::create_file(shard_->path);
  hid_t f = shard_->h5file.get();
  // A chunk never exceeds the shard, so a small shard is a small file (HDF5 allocates whole chunks).
  const uint64_t chunk = std::min(kTokenChunk, shard_tokens_);
  shard_->tokens = h5::create_extendible_1d(f, "tokens", h5::unsigned_le_type(manifest_.token_bytes), chunk, shard_->path);
  if (manifest_.layout == Layout::kExamples) {
    for (const auto& field : manifest_.example_fields) {
      if (field == "label_sets") {
        shard_->labels = h5::create_extendible_1d(f, "label_sets", h5::unsigned_le_type(manifest_.label_bytes), chunk, shard_->path);
      } else if (field == "loss_mask") {
        shard_->loss_mask = h5::create_extendible_1d(f, "loss_mask", H5T_STD_U8LE, chunk, shard_->path);
      }
    }
    shard_->offset_buf.push_back(0);
  }
}

void DatasetWriter::flush_buffers() {
  Shard& s = *shard_;
  const std::string what = s.path;
  if (!s.token_buf.empty()) {
    s.token_hash.update(s.token_buf.data(), s.token_buf.size());
    h5::append_1d(s.tokens.get(), h5::unsigned_le_type(manifest_.token_bytes), s.token_buf.data(),
                  s.token_buf.size() / manifest_.token_bytes, what);
    s.token_buf.clear();
  }
  if (!s.label_buf.empty()) {
    h5::append_1d(s.labels.get(), h5::unsigned_le_type(manifest_.label_bytes), s.label_buf.data(),
                  s.label_buf.size() / manifest_.label_bytes, what);
    s.label_buf.clear();
  }
  if (!s.mask_buf.empty()) {
    h5::append_1d(s.loss_mask.get(), H5T_STD_U8LE, s.mask_buf.data(), s.mask_buf.size(), what);
    s.mask_buf.clear();
  }
}

void DatasetWriter::close_shard() {
  if (!shard_) return;
  flush_buffers();
  Shard& s = *shard_;
  hid_t f = s.h5file.get();
  if (manifest_.layout == Layout::kExamples) {
    h5::write_1d(f, "offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, s.offset_buf.data(), s.offset_buf.size(), s.path);
  }
  ShardInfo info;
  info.file = s.file;
  info.first_token = s.first_token;
  info.tokens = s.tokens_written;
  info.first_example = s.first_example;
  info.examples = s.examples;
  info.checksum = s.token_hash.hex();
  hid_t ds = s.tokens.get();
  h5::write_attr_string(ds, "split", split_, s.path);
  h5::write_attr_u64(ds, "shard_index", shards_.size(), s.path);
  h5::write_attr_u64(ds, "first_token", info.first_token, s.path);
  h5::write_attr_u64(ds, "token_count", info.tokens, s.path);
  h5::write_attr_string(ds, "checksum", info.checksum, s.path);
  if (manifest_.layout == Layout::kExamples) {
    h5::write_attr_u64(ds, "first_example", info.first_example, s.path);
    h5::write_attr_u64(ds, "example_count", info.examples, s.path);
  }
  s.labels.reset();
  s.loss_mask.reset();
  s.tokens.reset();
  h5::close_file(s.h5file, s.path);
  info.file_checksum = checksum_file(s.path, &info.file_size);
  shards_.push_back(info);
  shard_.reset();
}

void DatasetWriter::append_tokens(const uint32_t* tokens, size_t count) {
  if (manifest_.layout != Layout::kStream) fail("internal error: append_tokens on an examples dataset");
  const int width = manifest_.token_bytes;
  while (count > 0) {
    if (!shard_) open_shard();
    uint64_t room = shard_tokens_ - shard_->tokens_written;
    size_t n = static_cast<size_t>(std::min<uint64_t>(room, count));
    for (size_t i = 0; i < n; ++i) {
      if (tokens[i] >= manifest_.vocab.size) fail("internal error: token {} outside vocabulary", tokens[i]);
      put_le(&shard_->token_buf, tokens[i], width);
    }
    shard_->tokens_written += n;
    split_tokens_ += n;
    tokens += n;
    count -= n;
    if (shard_->token_buf.size() >= (8u << 20)) flush_buffers();
    if (shard_->tokens_written == shard_tokens_) close_shard();
  }
}

void DatasetWriter::append_example(const Example& example) {
  if (manifest_.layout != Layout::kExamples) fail("internal error: append_example on a stream dataset");
  if (!shard_) open_shard();
  Shard& s = *shard_;
  const size_t n = example.tokens.size();
  for (size_t i = 0; i < n; ++i) {
    if (example.tokens[i] >= manifest_.vocab.size) fail("internal error: token {} outside vocabulary", example.tokens[i]);
    put_le(&s.token_buf, example.tokens[i], manifest_.token_bytes);
  }
  if (s.labels.get() >= 0) {
    if (example.label_sets.size() != n) fail("internal error: example has {} label sets for {} tokens", example.label_sets.size(), n);
    for (uint32_t v : example.label_sets) put_le(&s.label_buf, v, manifest_.label_bytes);
  }
  if (s.loss_mask.get() >= 0) {
    if (example.loss_mask.size() != n) fail("internal error: example has {} mask entries for {} tokens", example.loss_mask.size(), n);
    s.mask_buf.insert(s.mask_buf.end(), example.loss_mask.begin(), example.loss_mask.end());
  }
  s.tokens_written += n;
  s.examples += 1;
  s.offset_buf.push_back(s.tokens_written);
  split_tokens_ += n;
  split_examples_ += 1;
  if (s.token_buf.size() >= (8u << 20)) flush_buffers();
  if (s.tokens_written >= shard_tokens_) close_shard();
}

void DatasetWriter::end_split() {
  close_shard();
  SplitInfo info;
  info.tokens = split_tokens_;
  info.examples = split_examples_;
  info.shards = shards_;
  manifest_.splits[split_] = info;
  split_.clear();
}

void DatasetWriter::write_vocab_file(const std::vector<std::string>& symbols) {
  std::string text;
  for (const auto& s : symbols) {
    if (s.find('\n') != std::string::npos) fail("internal error: vocabulary symbol contains a newline");
    text += s + "\n";
  }
  write_file_atomic(staging_.path() + "/vocab.txt", text);
  manifest_.vocab.file = "vocab.txt";
  manifest_.vocab.file_checksum = checksum_bytes(text.data(), text.size());
  manifest_.vocab.size = symbols.size();
}

Manifest DatasetWriter::finish() {
  if (!split_.empty()) end_split();
  write_file_atomic(staging_.path() + "/manifest.json", manifest_.to_json().dump(2) + "\n");
  staging_.commit();
  return manifest_;
}

}  // namespace recur::data
