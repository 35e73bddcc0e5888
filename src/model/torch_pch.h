// Precompiled header for the LibTorch half of the library: parsed once per target instead of ~20 s per file.
#pragma once
#include <torch/torch.h>
