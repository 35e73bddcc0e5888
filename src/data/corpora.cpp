// See corpora.h. Byte corpora are streamed in blocks; WikiText is tokenised in memory (two passes).
#include "data/corpora.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/progress.h"
#include "core/version.h"
#include "data/dataset.h"
#include "data/shard_writer.h"
#include "data/synthetic.h"

namespace recur::data {
namespace {

constexpr uint64_t kEnwik8Bytes = 100000000;
constexpr uint64_t kEnwik8Train = 90000000;
constexpr uint64_t kEnwik8Valid = 5000000;
const char* kSplitNames[3] = {"train", "valid", "test"};

std::vector<SourceInfo> describe_sources(const std::vector<std::string>& inputs) {
  std::vector<SourceInfo> out;
  for (const auto& path : inputs) {
    if (!path_exists(path)) fail("input {} does not exist", path);
    if (is_directory(path)) fail("input {} is a directory; pass the corpus file(s) themselves", path);
    struct stat st {};
    // Inputs are read twice (checksum, then the splits), and a device (/dev/zero) never ends.
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      fail("input {} is a device, pipe or socket, not a regular file: write the corpus to a file first", path);
    }
    SourceInfo s;
    s.path = path;
    s.checksum = checksum_file(path, &s.size);
    out.push_back(s);
  }
  return out;
}

std::vector<uint64_t> split_by_ratios(uint64_t total, const std::vector<double>& ratios) {
  if (ratios.size() != 3) fail("--split-ratios needs three values (train, valid, test)");
  double sum = ratios[0] + ratios[1] + ratios[2];
  for (double r : ratios) {
    if (!(r >= 0) || sum <= 0) fail("--split-ratios must be non-negative and not all zero");
  }
  uint64_t valid = static_cast<uint64_t>(std::floor(total * ratios[1] / sum));
  uint64_t test = static_cast<uint64_t>(std::floor(total * ratios[2] / sum));
  return {total - valid - test, valid, test};
}

uint64_t shard_size(uint64_t split_tokens, int64_t shards) {
  if (shards <= 0) return kDefaultShardTokens;
  return std::max<uint64_t>(1, (split_tokens + shards - 1) / static_cast<uint64_t>(shards));
}

// Reads the inputs as one byte stream in order, in blocks.
class ByteStream {
 public:
  explicit ByteStream(const std::vector<std::string>& inputs) : inputs_(inputs) {}
  ~ByteStream() {
    if (f_) std::fclose(f_);
  }
  // Fills `buf` with up to its size; returns bytes read (0 at the end of all inputs). `*file`/`*offset`
  // tell where the block starts, for error messages.
  size_t read(std::vector<uint8_t>* buf, std::string* file, uint64_t* offset) {
    while (true) {
      if (!f_) {
        if (next_ >= inputs_.size()) return 0;
        current_ = inputs_[next_++];
        f_ = std::fopen(current_.c_str(), "rb");
        if (!f_) fail("cannot open input {}: {}", current_, std::strerror(errno));
        offset_ = 0;
      }
      size_t n = std::fread(buf->data(), 1, buf->size(), f_);
      if (n > 0) {
        *file = current_;
        *offset = offset_;
        offset_ += n;
        return n;
      }
      if (std::ferror(f_)) fail("read error on input {}", current_);
      std::fclose(f_);
      f_ = nullptr;
    }
  }

 private:
  std::vector<std::string> inputs_;
  size_t next_ = 0;
  std::FILE* f_ = nullptr;
  std::string current_;
  uint64_t offset_ = 0;
};

// Streams `limit` bytes of the inputs through `map` into the splits of the given sizes.
template <typename Map>
void write_byte_splits(DatasetWriter* writer, const std::vector<std::string>& inputs, const std::vector<uint64_t>& sizes,
                       int64_t shards, Map&& map, bool progress) {
  uint64_t total = sizes[0] + sizes[1] + sizes[2];
  ByteStream stream(inputs);
  Progress bar("shard", total, "B");
  std::vector<uint8_t> buf(4 << 20);
  std::vector<uint32_t> tokens(buf.size());
  size_t have = 0, pos = 0;
  std::string file;
  uint64_t offset = 0, done = 0;
  for (int s = 0; s < 3; ++s) {
    writer->begin_split(kSplitNames[s], shard_size(sizes[s], shards));
    uint64_t left = sizes[s];
    while (left > 0) {
      if (pos == have) {
        have = stream.read(&buf, &file, &offset);
        pos = 0;
        if (have == 0) fail("inputs ended early (expected {} bytes)", total);
      }
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, have - pos));
      for (size_t i = 0; i < n; ++i) tokens[i] = map(buf[pos + i], file, offset + pos + i);
      writer->append_tokens(tokens.data(), n);
      pos += n;
      left -= n;
      done += n;
      if (progress) bar.update(done);
    }
    writer->end_split();
  }
  if (progress) bar.finish();
}

Manifest base_manifest(const std::string& corpus, const std::vector<SourceInfo>& sources) {
  Manifest m;
  m.corpus = corpus;
  m.tool_version = version_string();
  m.sources = sources;
  return m;
}

Manifest shard_bytes_like(const ShardOptions& o, const std::vector<SourceInfo>& sources) {
  uint64_t total = 0;
  for (const auto& s : sources) total += s.size;
  if (total == 0) fail("corpus is empty: {} hold no bytes", fmt::join(o.inputs, ", "));
  Manifest m = base_manifest(o.corpus, sources);
  std::vector<uint64_t> sizes;
  if ((o.corpus == "enwik8" || o.corpus == "text8") && total >= kEnwik8Bytes) {
    sizes = {kEnwik8Train, kEnwik8Valid, kEnwik8Bytes - kEnwik8Train - kEnwik8Valid};  // first 10^8 bytes
  } else {
    if (o.corpus == "enwik8" || o.corpus == "text8") {
      spdlog::warn("{} holds {} bytes, fewer than the standard 10^8: splitting by ratios {}/{}/{}", o.inputs[0], total,
                   o.ratios[0], o.ratios[1], o.ratios[2]);
    }
    sizes = split_by_ratios(total, o.ratios);
  }
  m.params["split_bytes"] = sizes;
  if (o.corpus == "text8") {
    m.vocab.symbols.push_back(" ");
    for (char c = 'a'; c <= 'z'; ++c) m.vocab.symbols.push_back(std::string(1, c));
    m.vocab.size = 27;
    m.token_bytes = 1;
    DatasetWriter writer(o.out_dir, m, o.force);
    write_byte_splits(&writer, o.inputs, sizes, o.shards,
                      [](uint8_t b, const std::string& file, uint64_t offset) -> uint32_t {
                        if (b == ' ') return 0;
                        if (b >= 'a' && b <= 'z') return 1 + (b - 'a');
                        fail("{}: byte {} (0x{:02x}) at offset {} is not in text8's alphabet (lowercase a-z and space)",
                             file, b >= 32 && b < 127 ? fmt::format("'{}'", static_cast<char>(b)) : std::string("?"), b,
                             offset);
                      },
                      o.progress);
    return writer.finish();
  }
  m.vocab.bytes = true;
  m.vocab.size = 256;
  m.token_bytes = 1;
  DatasetWriter writer(o.out_dir, m, o.force);
  write_byte_splits(&writer, o.inputs, sizes, o.shards, [](uint8_t b, const std::string&, uint64_t) -> uint32_t { return b; },
                    o.progress);
  return writer.finish();
}

std::vector<std::string> read_lines(const std::string& path, bool* final_newline) {
  std::string text = read_file(path);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(start));
      if (final_newline) *final_newline = false;
      return lines;
    }
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  if (final_newline) *final_newline = true;
  return lines;
}

Manifest shard_lines(const ShardOptions& o, const std::vector<SourceInfo>& sources) {
  std::vector<std::string> lines;
  bool final_newline = true;
  for (size_t i = 0; i < o.inputs.size(); ++i) {
    bool fn = true;
    auto more = read_lines(o.inputs[i], &fn);
    if (!fn && i + 1 < o.inputs.size()) fail("{}: last line has no newline; only the last input may end without one", o.inputs[i]);
    final_newline = fn;
    lines.insert(lines.end(), more.begin(), more.end());
  }
  if (lines.empty()) fail("corpus is empty: {} hold no lines", fmt::join(o.inputs, ", "));
  Manifest m = base_manifest("lines", sources);
  m.vocab.bytes = true;
  m.vocab.size = 256;
  m.layout = Layout::kExamples;
  m.params["final_newline"] = final_newline;
  auto sizes = split_by_ratios(lines.size(), o.ratios);
  m.params["split_lines"] = sizes;
  DatasetWriter writer(o.out_dir, m, o.force);
  size_t next = 0;
  Progress bar("shard", lines.size(), "lines");
  for (int s = 0; s < 3; ++s) {
    uint64_t tokens = 0;
    for (uint64_t i = 0; i < sizes[s]; ++i) tokens += lines[next + i].size();
    writer.begin_split(kSplitNames[s], shard_size(tokens, o.shards));
    for (uint64_t i = 0; i < sizes[s]; ++i, ++next) {
      Example e;
      e.tokens.assign(lines[next].begin(), lines[next].end());
      for (auto& t : e.tokens) t &= 0xff;
      writer.append_example(e);
      if (o.progress) bar.update(next + 1);
    }
    writer.end_split();
  }
  if (o.progress) bar.finish();
  return writer.finish();
}

// WikiText-103: words separated by whitespace, "<eos>" appended to every line (as the reference does).
template <typename Fn>
void for_each_word(const std::string& text, Fn&& fn) {
  size_t i = 0, n = text.size();
  while (i < n) {
    size_t nl = text.find('\n', i);
    if (nl == std::string::npos) nl = n;
    size_t j = i;
    while (j < nl) {
      while (j < nl && std::isspace(static_cast<unsigned char>(text[j]))) ++j;
      size_t k = j;
      while (k < nl && !std::isspace(static_cast<unsigned char>(text[k]))) ++k;
      if (k > j) fn(std::string_view(text.data() + j, k - j));
      j = k;
    }
    fn(std::string_view("<eos>"));
    i = nl + 1;
  }
}

Manifest shard_wikitext(const ShardOptions& o, const std::vector<SourceInfo>& sources) {
  std::string files[3];
  for (const auto& in : o.inputs) {
    std::string base = in.substr(in.find_last_of('/') == std::string::npos ? 0 : in.find_last_of('/') + 1);
    int which = base == "wiki.train.tokens" ? 0 : base == "wiki.valid.tokens" ? 1 : base == "wiki.test.tokens" ? 2 : -1;
    if (which < 0) fail("wikitext103 input {} is not one of wiki.train.tokens, wiki.valid.tokens, wiki.test.tokens", in);
    files[which] = in;
  }
  for (int s = 0; s < 3; ++s) {
    if (files[s].empty()) fail("wikitext103 needs wiki.{}.tokens among the inputs", kSplitNames[s]);
  }
  std::string train = read_file(files[0]);
  if (train.empty()) fail("corpus is empty: {} holds no text", files[0]);
  std::unordered_map<std::string, uint64_t> counts;
  std::vector<std::string> order;
  for_each_word(train, [&](std::string_view w) {
    auto [it, inserted] = counts.emplace(std::string(w), 0);
    if (inserted) order.push_back(it->first);
    ++it->second;
  });
  std::vector<size_t> idx(order.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return counts[order[a]] > counts[order[b]]; });
  std::vector<std::string> symbols;
  std::unordered_map<std::string, uint32_t> ids;
  for (size_t i : idx) {
    ids.emplace(order[i], static_cast<uint32_t>(symbols.size()));
    symbols.push_back(order[i]);
  }
  Manifest m = base_manifest("wikitext103", sources);
  m.vocab.size = symbols.size();
  m.token_bytes = token_bytes_for_vocab(symbols.size());
  DatasetWriter writer(o.out_dir, m, o.force);
  writer.write_vocab_file(symbols);
  auto unk = ids.find("<unk>");
  Progress bar("shard", 3, "splits");
  for (int s = 0; s < 3; ++s) {
    std::string text = s == 0 ? std::move(train) : read_file(files[s]);
    std::vector<uint32_t> tokens;
    uint64_t line = 1;
    for_each_word(text, [&](std::string_view w) {
      auto it = ids.find(std::string(w));
      if (it == ids.end()) {
        if (unk == ids.end()) fail("{}: line {}: word '{}' is not in the training vocabulary and there is no <unk>", files[s], line, w);
        it = unk;
      }
      if (w == "<eos>") ++line;
      tokens.push_back(it->second);
    });
    writer.begin_split(kSplitNames[s], shard_size(tokens.size(), o.shards));
    writer.append_tokens(tokens.data(), tokens.size());
    writer.end_split();
    if (o.progress) bar.update(s + 1);
  }
  if (o.progress) bar.finish();
  return writer.finish();
}

}  // namespace

const std::vector<std::string>& corpus_kinds() {
  static const std::vector<std::string> kinds = {"enwik8", "text8", "wikitext103", "bytes", "lines"};
  return kinds;
}

Manifest shard_corpus(const ShardOptions& o) {
  if (std::find(corpus_kinds().begin(), corpus_kinds().end(), o.corpus) == corpus_kinds().end()) {
    fail("unknown corpus '{}' (expected one of: {})", o.corpus, fmt::join(corpus_kinds(), ", "));
  }
  if (o.inputs.empty()) fail("--input is required");
  if ((o.corpus == "enwik8" || o.corpus == "text8") && o.inputs.size() != 1) {
    fail("{} takes exactly one input file, got {}", o.corpus, o.inputs.size());
  }
  auto sources = describe_sources(o.inputs);
  if (o.corpus == "lines") return shard_lines(o, sources);
  if (o.corpus == "wikitext103") return shard_wikitext(o, sources);
  // enwik8 keeps only the first 10^8 bytes of a longer file.
  if (o.corpus == "enwik8" || o.corpus == "text8") {
    uint64_t size = sources[0].size;
    if (size > kEnwik8Bytes) spdlog::warn("{} holds {} bytes; using the first 10^8", o.inputs[0], size);
  }
  return shard_bytes_like(o, sources);
}

void dump_split(const Dataset& dataset, const std::string& split_name, std::FILE* out) {
  const Manifest& m = dataset.manifest();
  const Split& split = dataset.split(split_name);
  std::vector<std::string> symbols = dataset.symbols();
  bool single_chars = std::all_of(symbols.begin(), symbols.end(), [](const std::string& s) { return s.size() == 1; });
  bool words = !m.vocab.file.empty();
  auto put = [&](const std::string& s) {
    if (std::fwrite(s.data(), 1, s.size(), out) != s.size()) fail("write error on output (disk full or closed pipe?)");
  };
  auto render = [&](const std::vector<int64_t>& tokens, std::string* text, bool* at_line_start) {
    for (int64_t t : tokens) {
      const std::string& sym = symbols.at(static_cast<size_t>(t));
      if (words && sym == "<eos>") {
        *text += '\n';
        *at_line_start = true;
        continue;
      }
      if (!single_chars && !*at_line_start) *text += ' ';
      *text += sym;
      *at_line_start = false;
    }
  };
  if (m.layout == Layout::kStream) {
    const uint64_t block = 1 << 20;
    std::vector<int64_t> buf;
    bool at_line_start = true;
    for (uint64_t pos = 0; pos < split.tokens(); pos += block) {
      uint64_t n = std::min(block, split.tokens() - pos);
      buf.resize(n);
      split.read_tokens(pos, n, buf.data());
      std::string text;
      render(buf, &text, &at_line_start);
      put(text);
    }
    return;
  }
  bool final_newline = m.params.value("final_newline", true);
  // The corpus's last line is the last example of the last split (train, valid, test order) that has any.
  bool last_split = true, after = false;
  for (const char* name : {"train", "valid", "test"}) {
    if (after && dataset.has_split(name) && dataset.split(name).examples() > 0) last_split = false;
    if (split_name == name) after = true;
  }
  for (uint64_t i = 0; i < split.examples(); ++i) {
    ExampleView e = split.read_example(i);
    std::string text;
    bool at_line_start = true;
    render(e.tokens, &text, &at_line_start);
    if (final_newline || !last_split || i + 1 < split.examples()) text += '\n';
    put(text);
  }
}

}  // namespace recur::data
