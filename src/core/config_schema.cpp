// The one list of config keys Recur understands, with types, defaults and help.
// Keys are a user-facing contract: add keys freely, never rename or retype an existing one.
#include "core/config.h"

namespace recur {

// Upper bounds of size-like keys: far above any run this code is for, low enough that a typo (an extra
// zero or three) is a config error instead of a hang or an allocation the machine cannot make.
constexpr double kMaxLayers = 1024, kMaxHeads = 1024, kMaxWidth = 1 << 18, kMaxLength = 1 << 20;
constexpr double kMaxBatch = 1 << 20, kMaxThreads = 1024, kMaxBucketMb = 1 << 16, kMaxVocab = 4294967296.0;  // uint32 tokens

const std::vector<KeySpec>& config_schema() {
  static const std::vector<KeySpec> schema = {
      // --- data -------------------------------------------------------------------------------
      {"data.path", ValueType::kString, "null", "dataset directory written by `recur shard` or `recur gen`"},
      {"data.verify", ValueType::kBool, "true",
       "verify every shard's checksums before training (sizes are always checked)"},
      {"data.fraction", ValueType::kFloat, "1.0",
       "train only on the first fraction of the train split (data-scaling ablation)", {}, 1e-9, 1.0},
      {"data.prefetch", ValueType::kInt, "4", "batches prepared ahead by the background loader thread", {}, 1, 1024},
      // --- model ------------------------------------------------------------------------------
      {"model.type", ValueType::kString, "\"xl\"", "model family",
       {"transformer", "rsa_transformer", "xl", "rsa_xl", "tl_xl", "fl_xl", "brt", "rsa_brt", "r_transformer",
        "recurrent_transformer", "gpt"}},
      {"model.n_layer", ValueType::kInt, "12", "layers", {}, 1, kMaxLayers},
      {"model.n_head", ValueType::kInt, "8", "attention heads per layer", {}, 1, kMaxHeads},
      {"model.d_model", ValueType::kInt, "512", "model width", {}, 1, kMaxWidth},
      {"model.d_head", ValueType::kInt, "0", "head size (0 = d_model / n_head, which must then divide)", {}, 0, kMaxWidth},
      {"model.d_inner", ValueType::kInt, "2048", "feed-forward inner width", {}, 1, kMaxWidth},
      {"model.dropout", ValueType::kFloat, "0.1", "dropout on embeddings, attention output and feed-forward", {}, 0.0, 1.0},
      {"model.dropatt", ValueType::kFloat, "0.0", "dropout on attention probabilities (softmax part only)", {}, 0.0, 1.0},
      {"model.attention_kernel", ValueType::kString, "\"auto\"", "softmax attention of every attention model: "
       "math (matmul, mask, softmax: the reference's expressions), sdpa (at::scaled_dot_product_attention, position term "
       "and mask as one additive mask, or is_causal), auto (sdpa on GPUs, math on CPUs)", {"auto", "math", "sdpa"}},
      {"model.pre_ln", ValueType::kBool, "false", "pre-LayerNorm sublayers (default post-LN, as the reference XL)"},
      {"model.init_std", ValueType::kFloat, "0.02", "std of the normal initialisation (LayerNorm weights: mean 1)", {}, 0.0},
      {"model.init", ValueType::kString, "\"normal\"", "transformer/XL/BRT families: normal = weights N(0, model.init_std), "
       "biases 0 (the Transformer-XL reference); bhattamishra = as Bhattamishra et al.'s formal-language code: embedding "
       "and output weights U(-0.1, 0.1), output bias 0, the q/k/v projection Xavier-uniform, other linear layers "
       "PyTorch's default U(+-1/sqrt(fan_in)) (weights and biases), LayerNorm 1 and 0", {"normal", "bhattamishra"}},
      {"model.tie_output", ValueType::kBool, "true", "transformer/XL/BRT families: the output layer's weights are the "
       "embedding table (with an output bias of its own); false = a separate output weight (crit.out_layers.N.weight) "
       "beside that bias, i.e. a Linear with bias as Bhattamishra et al.'s formal-language code"},
      {"model.vocab_size", ValueType::kInt, "0", "vocabulary size; 0 = from the dataset manifest (else must match it)", {}, 0, kMaxVocab},
      {"model.cutoffs", ValueType::kIntList, "[]", "transformer/XL/BRT families: adaptive input and softmax cluster "
       "boundaries inside the vocabulary (WikiText-103: [20000, 40000, 200000]); [] = one full softmax", {}, 1},
      {"model.div_val", ValueType::kInt, "1", "adaptive input/softmax: cluster i's tables are model.d_embed / div_val^i "
       "wide (1 = one table)", {}, 1},
      {"model.d_embed", ValueType::kInt, "0", "width of the (head cluster's) embedding table; 0 = model.d_model, "
       "otherwise projected to d_model", {}, 0},
      {"model.tie_projs", ValueType::kBool, "true", "adaptive softmax: the tail clusters' output projections are the "
       "adaptive input's (the head's stays its own; the reference's WikiText-103 setting)"},
      {"model.mem_len", ValueType::kInt, "512", "XL memory length M (0 = no memory)", {}, 0, kMaxLength},
      {"model.clamp_len", ValueType::kInt, "-1", "XL: clamp relative positions to this distance (<= 0: no clamp)"},
      {"model.same_length", ValueType::kBool, "false", "XL: every query sees the same number of keys during training"},
      {"model.initial_memory", ValueType::kString, "\"empty\"", "XL family: what attention sees before a stream's or "
       "example's first segment: empty (nothing; the reference Transformer-XL) or zeros (model.mem_len zero hidden states "
       "per layer, as HuggingFace's TransfoXLModel does when called without mems: Bhattamishra et al.'s SAN-Rel; "
       "examples are then evaluated with the model's mem_len, same_length and clamp_len)", {"empty", "zeros"}},
      {"model.pos_enc", ValueType::kString, "\"sinusoidal\"", "transformer: absolute position encoding",
       {"sinusoidal", "learned", "none"}},
      {"model.max_len", ValueType::kInt, "1024", "transformer with learned positions: longest segment", {}, 1, kMaxLength},
      {"model.n_rsa_heads", ValueType::kInt, "0", "RSA heads per layer (the first heads); sum of model.rem_types", {}, 0, kMaxHeads},
      {"model.rem_types", ValueType::kIntList, "[0, 0, 0, 0, 0, 0]",
       "(k1..k6): RSA heads of each REM type: regular, cos, sin, dilated regular, dilated cos, dilated sin", {}, 0, kMaxHeads},
      {"model.dilations", ValueType::kIntList, "[]", "one dilation per dilated RSA head (k4+k5+k6 values)", {}, 1, kMaxLength},
      {"model.mu_init", ValueType::kFloat, "0.0", "initial RSA gate pre-activation mu (gate = sigmoid(mu))"},
      {"model.rem_truncation", ValueType::kInt, "200", "K: parametric REM entries with power beyond K are 0", {}, 1},
      {"model.rsa_drop_rel_pos", ValueType::kBool, "false", "rsa_xl: RSA heads drop the relative-position term"},
      {"model.fl_max_len", ValueType::kInt, "0", "fl_xl: keys (columns) of the learnable train.tgt_len x keys matrix per head "
       "(0 = train.tgt_len + model.mem_len); keys beyond it (a longer evaluation memory) get 0", {}, 0, kMaxLength},
      {"model.tl_lags", ValueType::kInt, "0", "tl_xl: learnable lag weights 1..N (0 = every lag of the training window, "
       "train.tgt_len + model.mem_len - 1); longer lags get 0", {}, 0, kMaxLength},
      {"model.rem_cyclical", ValueType::kString, "\"shared_pair\"", "cyclical REM parameters: shared_pair (the k-th cos and "
       "k-th sin head of a family share (nu, theta), Table 7's counts), fixed_theta (nu per head, theta = pi/4 not learned), "
       "per_head (nu and theta per head)", {"shared_pair", "fixed_theta", "per_head"}},
      {"model.brt_layer", ValueType::kInt, "-3", "brt/rsa_brt: index of the block-recurrent layer (negative: from the top; -3 = third from the top)"},
      {"model.brt_window", ValueType::kInt, "512", "brt/rsa_brt: window W of tokens processed per recurrent step", {}, 1, kMaxLength},
      {"model.brt_states", ValueType::kInt, "512", "brt/rsa_brt: number S of recurrent state vectors", {}, 1, kMaxLength},
      {"model.brt_gate", ValueType::kString, "\"fixed\"", "brt/rsa_brt: state gate", {"fixed", "lstm"}},
      {"model.brt_state_ffn", ValueType::kBool, "false", "brt/rsa_brt: feed-forward on the state update (false = skip)"},
      {"model.rnn_type", ValueType::kString, "\"gru\"", "r_transformer: the LocalRNN's cell", {"gru", "lstm", "rnn"}},
      {"model.local_window", ValueType::kInt, "7", "r_transformer: LocalRNN window k", {}, 1, kMaxLength},
      {"model.emb_dropout", ValueType::kFloat, "-1.0", "r_transformer: dropout on the embedding output (negative = model.dropout)", {}, -1.0, 1.0},
      {"model.emb_init", ValueType::kString, "\"uniform\"", "r_transformer: tied embedding init, uniform(-0.1, 0.1) "
       "(the reference's character model) or normal N(0, 0.01) (its word model)", {"uniform", "normal"}},
      {"model.rt_window", ValueType::kInt, "1", "recurrent_transformer: window w of hidden vectors and new tokens per step (1 = the paper)", {}, 1, kMaxLength},
      // --- train ------------------------------------------------------------------------------
      {"train.steps", ValueType::kInt, "1000", "optimizer steps to run", {}, 0},
      {"train.batch_size", ValueType::kInt, "22", "global batch size (sequences per step, all ranks together)", {}, 1, kMaxBatch},
      {"train.tgt_len", ValueType::kInt, "512", "tokens per training segment (T)", {}, 1, kMaxLength},
      {"train.seed", ValueType::kInt, "1", "seed for initialisation, dropout and the data sampler", {}, 0},
      {"train.log_every", ValueType::kInt, "10", "steps between progress lines and metrics.jsonl records", {}, 1},
      {"train.optimizer", ValueType::kString, "\"adam\"", "optimizer (sgd: plain, no momentum)", {"adam", "adamw", "sgd"}},
      {"train.optimizer_kernel", ValueType::kString, "\"auto\"", "adam/adamw update: fused (ATen's fused kernel, one call "
       "per parameter group), loop (LibTorch's optimizer, one parameter at a time; the same state and, to 1e-6, the same "
       "result), auto (fused)", {"auto", "fused", "loop"}},
      {"train.tf32", ValueType::kString, "\"auto\"", "fp32 matmuls and convolutions on GPUs in TF32 (10-bit mantissa "
       "inputs, fp32 accumulation): on, off, auto (on for CUDA devices); no effect on the CPU", {"auto", "on", "off"}},
      {"train.lr", ValueType::kFloat, "2.5e-4", "peak learning rate", {}, 0.0},
      {"train.weight_decay", ValueType::kFloat, "0.0", "weight decay (decoupled for adamw)", {}, 0.0},
      {"train.beta1", ValueType::kFloat, "0.9", "Adam beta1", {}, 0.0, 1.0},
      {"train.beta2", ValueType::kFloat, "0.999", "Adam beta2", {}, 0.0, 1.0},
      {"train.clip", ValueType::kFloat, "0.25", "clip gradients to this global norm (0 = off)", {}, 0.0},
      {"train.schedule", ValueType::kString, "\"cosine\"", "learning-rate schedule: constant; linear warmup + cosine to "
       "train.min_lr over train.steps; halve every train.halve_every_epochs epochs", {"constant", "cosine", "halve"}},
      {"train.warmup_steps", ValueType::kInt, "0", "linear warmup steps (cosine schedule)", {}, 0},
      {"train.min_lr", ValueType::kFloat, "0.0", "cosine schedule: final learning rate", {}, 0.0},
      {"train.halve_every_epochs", ValueType::kFloat, "5", "halve schedule: epochs between halvings", {}, 1e-9},
      {"train.label_loss", ValueType::kString, "\"bce\"", "formal languages (label sets): per symbol, bce = binary "
       "cross-entropy on the logits; mse = squared error of sigmoid(logit) against the 0/1 label (Bhattamishra et al.'s "
       "code); both averaged over symbols, then over positions", {"bce", "mse"}},
      {"train.stop_at_mean_accuracy", ValueType::kFloat, "0.0", "stop once the mean over valid and eval.extra_splits of "
       "the sequence accuracy at an evaluation reaches this (Bhattamishra et al.'s code: 0.999); needs eval.every_epoch; "
       "0 = off", {}, 0.0, 1.0},
      {"train.loss_last", ValueType::kInt, "0", "stream tasks: compute the loss only on the last N positions of each segment (0 = all; R-Transformer protocol)", {}, 0, kMaxLength},
      {"train.grad_accum", ValueType::kInt, "1", "micro-batches per optimizer step (train.batch_size is split among them)", {}, 1, kMaxBatch},
      {"train.sampler", ValueType::kString, "\"auto\"", "batch order: ordered (XL streams), crop (random windows); auto "
       "picks ordered for models that carry state", {"auto", "ordered", "crop"}},
      {"train.nan_policy", ValueType::kString, "\"stop\"", "on a NaN/inf loss: stop with the step, or skip the update",
       {"stop", "skip"}},
      {"train.eval_every", ValueType::kInt, "0", "steps between evaluations on the valid split (0 = only at the end)", {}, 0},
      {"train.backend", ValueType::kString, "\"auto\"", "communication between ranks: auto (NCCL on GPUs, MPI on CPUs "
       "when launched with several ranks; under torchrun: c10d's Gloo, or torchrun's store where the build has no Gloo), "
       "mpi, gloo, store, nccl, single", {"auto", "mpi", "gloo", "store", "nccl", "single"}},
      {"train.device", ValueType::kString, "\"auto\"", "where to train: auto (a rank's GPU = its local rank when CUDA is "
       "available, else the CPU), cpu, cuda (the local rank's GPU), or cuda:N (GPU N for every rank of a node, e.g. "
       "two ranks on one GPU for a test)", {}},
      {"train.precision", ValueType::kString, "\"fp32\"", "fp32, or bf16 autocast of the forward (fp32 master weights, "
       "gradients and optimizer)", {"fp32", "bf16"}},
      {"train.reduce_dtype", ValueType::kString, "\"fp32\"", "dtype of the gradient all-reduce: fp32, or bf16 (half the "
       "traffic; gradients are rounded to bf16 before summing)", {"fp32", "bf16"}},
      {"train.first_bucket_mb", ValueType::kFloat, "1.0", "size of the first gradient bucket (MiB)", {}, 1e-6, kMaxBucketMb},
      {"train.bucket_mb", ValueType::kFloat, "25.0", "size of the other gradient buckets (MiB)", {}, 1e-6, kMaxBucketMb},
      {"train.collective_timeout_s", ValueType::kFloat, "600", "deadline of every collective between ranks and of NCCL "
       "init (s): a rank still waiting after it ends the job naming itself and the operation (0 = no deadline)", {}, 0.0},
      {"train.threads", ValueType::kInt, "0", "intra-op CPU threads (0 = LibTorch's default)", {}, 0, kMaxThreads},
      // --- checkpoint -------------------------------------------------------------------------
      {"checkpoint.every_steps", ValueType::kInt, "0", "save every N steps (0 = only at the end and on a stop signal)", {}, 0},
      {"checkpoint.every_minutes", ValueType::kFloat, "30", "also save when this many minutes passed since the last save (0 = off)", {}, 0.0},
      {"checkpoint.keep_last", ValueType::kInt, "2", "checkpoints kept (milestones not counted)", {}, 2},
      {"checkpoint.async", ValueType::kBool, "false", "write checkpoints from a background thread after a host copy (at most one in flight)"},
      {"checkpoint.milestone_every", ValueType::kInt, "0", "checkpoints at multiples of this step are never deleted (0 = none)", {}, 0},
      // --- eval -------------------------------------------------------------------------------
      {"eval.tgt_len", ValueType::kInt, "0", "evaluation segment length (0 = train.tgt_len)", {}, 0, kMaxLength},
      {"eval.score_last", ValueType::kInt, "0", "streams: 0 = score every position of consecutive segments; N > 0 = "
       "windows of eval.tgt_len tokens every N tokens, each from an empty state, scoring only their last N positions "
       "(every scored token has eval.tgt_len - N tokens of context; the R-Transformer's protocol)", {}, 0},
      {"eval.mem_len", ValueType::kInt, "-1", "evaluation memory length (-1 = model.mem_len)", {}, -1, kMaxLength},
      {"eval.clamp_len", ValueType::kInt, "-1", "evaluation clamp_len (-1 = model.clamp_len)"},
      {"eval.same_length", ValueType::kBool, "true", "XL evaluation: every query sees exactly eval.mem_len keys"},
      {"eval.batch_size", ValueType::kInt, "10", "streams evaluated in parallel", {}, 1, kMaxBatch},
      {"eval.extra_splits", ValueType::kStringList, "[]", "also evaluate these splits at the end of training (eval.json: splits.NAME)"},
      {"eval.every_epoch", ValueType::kBool, "false", "also evaluate at the end of every epoch (and the last step), and "
       "make every evaluation during training cover valid and each split of eval.extra_splits (metrics.jsonl; eval.json "
       "adds each split's best evaluation under best.NAME)"},
      {"eval.train_tgt_len", ValueType::kInt, "0", "evaluation during training (train.eval_every): segment length (0 = XL "
       "models with memory: min(128, train.tgt_len) as the reference's training loop; others: as the final evaluation)", {}, 0, kMaxLength},
      {"eval.train_mem_len", ValueType::kInt, "-1", "evaluation during training: memory length (-1 = XL models: model.mem_len "
       "+ train.tgt_len - eval.train_tgt_len; others: as the final evaluation)", {}, -1, kMaxLength},
      {"eval.train_same_length", ValueType::kBool, "false", "evaluation during training: same_length (the reference's loop: off)"},
      {"eval.max_tokens", ValueType::kInt, "0", "evaluate at most this many tokens per stream set (0 = the whole split)", {}, 0},
      // --- log --------------------------------------------------------------------------------
      {"log.tensorboard", ValueType::kBool, "false", "also write metrics.jsonl's values as TensorBoard event files in RUN/tb/"},
  };
  return schema;
}

}  // namespace recur
