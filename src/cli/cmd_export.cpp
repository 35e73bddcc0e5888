// `recur export`: a trained run's parameters for other tools (safetensors, HDF5) and its config as JSON.
// The files carry the names of docs/models.md; python/recur_torch.py loads model.h5 (docs/pytorch.md).
#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "train/export.h"

namespace recur::cli {

int cmd_export(const Argv& argv) {
  Args args("recur export --run-dir RUN --format safetensors|h5 [--out DIR]",
            "Write a trained run's parameters (model.pt) for use outside Recur, in fp32 under the names of\n"
            "docs/models.md: model.safetensors (--format safetensors) or model.h5 (--format h5, one dataset\n"
            "per name, read by python/recur_torch.py), and config.json: the resolved config with\n"
            "vocab_size and model_type. Prints the paths written.");
  args.required("run-dir", "RUN", "a run directory (config.yaml and model.pt)")
      .required("format", "FORMAT", "safetensors or h5")
      .option("out", "DIR", "an existing directory to write into (default: RUN)");
  if (!args.parse(argv)) return 0;
  const std::string format = args.get("format");
  if (format != "safetensors" && format != "h5") {
    throw UsageError("--format must be safetensors or h5, got '" + format + "'");
  }
  const std::string run_dir = args.get("run-dir");
  const std::string out = args.has("out") ? args.get("out") : run_dir;
  auto written = train::export_run(run_dir, format == "h5" ? train::ExportFormat::kH5 : train::ExportFormat::kSafetensors, out);
  for (const auto& path : written) std::printf("%s\n", path.c_str());
  return 0;
}

}  // namespace recur::cli
