// Sweeps: a grid of MLA settings evaluated on LongBench-style datasets, cut into work items
// (setting x dataset) that N processes or Slurm array tasks share without talking to each other.
//
// Grid text: axes separated by ';', each an MlaSpec key and its values separated by ',':
//   "strategy=high,2-norm;r=2,4,8;d_kv=8,16,32;svd=joint"   -> 2 x 3 x 3 x 1 = 18 combinations
// The value '-' leaves the key out of that combination (its default), so a grid can hold the
// no-SVD baseline beside latents: "svd=none,joint;d_kv=-,16". Every combination is parsed and
// validated against the model (MlaSpec::parse, MlaSpec::validate); invalid ones are refused
// with the reason and left out. Combinations that differ only in keys without effect (start
// outside `uniform`, scores/calib/variant outside the 2-norm strategies, kv_group/residual at
// 16 bits, r = head_dim/2 for `full`) are one setting: canonical_setting() drops those keys
// and later duplicates are listed as collapsed.
//
// Cost model (units: prompt-token equivalents, integers so every process computes the same
// numbers): cost(setting, dataset) = factor(setting) x work(dataset) / 1000, where
//   work(dataset) = sum over the records evaluated (the first --limit) of
//                   min(prompt tokens, max prompt) + kDecodeTokenWeight x maxlen(dataset)
//   factor(setting) in permille = 1000, + kConvertedPermille for any setting other than the
//                   original (partial RoPE / latent attention), + kQuantizedCachePermille when
//                   kv_bits < 16 (every appended token is quantized, every step dequantizes).
// A prefill token and a decode step cost differently (a decode step reads every weight for one
// token); kDecodeTokenWeight prices a decode step as that many prompt tokens (a rough figure
// between CPU, where prefill dominates, and GPU, where decoding does). Prompt tokens are
// counted with the model's tokenizer, truncated as the runner truncates (eval/runner.h). The
// factors were measured on wb-tiny-mha on the CPU (see sweep.cpp): MLA layouts cost about what
// the original costs, since attention over the cache is a small share of the work at these
// contexts; a quantized cache costs a fifth more. Only the ratios matter (they balance shards).
//
// Sharding ("i/N", 0 <= i < N): the items, ordered by cost descending then by key (setting,
// dataset) ascending, are dealt greedily to the shard with the least cost so far, the lowest
// index on ties (LPT list scheduling). Deterministic: every process computes the same
// assignment from the same grid, tasks and options, and no DB state enters it. Each item lands
// in exactly one shard, and the loads differ by at most the largest item cost.
// Items already finished in the results DB are skipped after sharding (so shards stay the
// same however far each has got).
#pragma once

#include "analysis/mla_spec.h"

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace mlawb {

struct ModelConfig;
class LongBenchTaskSet;
class Tokenizer;

inline constexpr int64_t kDecodeTokenWeight = 8;         // one decode step = 8 prompt tokens
inline constexpr int64_t kConvertedPermille = 50;        // +5% for a converted model
inline constexpr int64_t kQuantizedCachePermille = 200;  // +20% for a quantized cache

struct GridAxis {
    std::string key;                  // an MlaSpec key (strategy, r, d_kv, svd, ...)
    std::vector<std::string> values;  // in the order given; "-" = key left out
};

struct SweepGrid {
    std::vector<GridAxis> axes;  // in the order given
    // Throws Error("", "--grid", reason): empty text or axis, no '=', unknown or repeated key,
    // empty or repeated value.
    static SweepGrid parse(const std::string& text);
    int64_t combinations() const;  // product of the axes' sizes
};

// The spec with keys that change nothing for this strategy and cache reset to their defaults
// (see the header comment); its to_string() is the setting's canonical text.
MlaSpec canonical_setting(const MlaSpec& spec, const ModelConfig& config);

struct RefusedCombination {
    std::string combination;  // "strategy=full,r=4"
    std::string reason;       // MlaSpec's message
};
struct CollapsedCombination {
    std::string combination;  // as written from the grid
    std::string setting;      // the canonical setting it equals (listed earlier)
};

struct GridExpansion {
    std::vector<std::string> settings;  // canonical texts, distinct, in grid order (last axis fastest)
    std::vector<RefusedCombination> refused;
    std::vector<CollapsedCombination> collapsed;
    int64_t combinations = 0;
};

// Expands the cartesian product and checks each combination against the model. Throws
// Error("", "--grid", ...) when no combination is valid (with the first refusal's reason).
GridExpansion expand_grid(const SweepGrid& grid, const ModelConfig& config);

// What evaluating one dataset costs, independent of the setting.
struct DatasetWork {
    std::string dataset;
    int64_t records = 0;        // records evaluated (after --limit)
    int64_t prompt_tokens = 0;  // after truncation to the max prompt
    int64_t new_tokens = 0;     // records x maxlen: the decode budget
    int64_t work() const { return prompt_tokens + kDecodeTokenWeight * new_tokens; }
};
// Tokenizes the dataset's prompts as the runner does. limit < 0: every record; max_prompt <= 0:
// the model context minus maxlen. Malformed lines are skipped as `eval` skips them.
DatasetWork measure_dataset(const LongBenchTaskSet& tasks, const std::string& dataset, const Tokenizer& tokenizer,
                            const ModelConfig& config, int64_t limit, int64_t max_prompt);

int64_t setting_cost_permille(const MlaSpec& spec);  // factor(setting) above

struct SweepItem {
    std::string setting;  // canonical MlaSpec text
    std::string dataset;
    int64_t cost = 0;
    std::string key() const { return setting + "\n" + dataset; }  // the tie-break and identity
};

// Every setting x dataset, settings in the given order, datasets in the given order.
std::vector<SweepItem> make_sweep_items(const std::vector<std::string>& settings, const std::vector<DatasetWork>& work);

struct ShardSpec {
    int64_t index = 0;  // 0-based
    int64_t count = 1;
    // "i/N" with 0 <= i < N; throws Error("", "--shard", ...).
    static ShardSpec parse(const std::string& text);
    std::string to_string() const { return std::to_string(index) + "/" + std::to_string(count); }
};

// The shard of each item (same order as `items`), by the LPT rule in the header comment.
// count >= 1. Throws Error on duplicate item keys (a grid never makes them).
std::vector<int64_t> assign_shards(const std::vector<SweepItem>& items, int64_t count);
// The items of one shard, in the order they are dealt (cost descending, then key).
std::vector<SweepItem> shard_items(const std::vector<SweepItem>& items, const ShardSpec& shard);


// Keys (SweepItem::key) of the items finished in the results DB for this model (content hash)
// and options: a finished `longbench` run whose dataset matches and whose recorded spec has the
// item's canonical setting (canonical_setting of both: eval records the resolved spec, e.g.
// "strategy=full,r=32" for "strategy=full"). Empty when the file does not exist. The kept-pairs
// hash is not compared: for a given model the spec text decides the mask (2-norm via its scores
// or calibration file).
std::set<std::string> finished_item_keys(const std::string& db_path, const std::string& model_hash,
                                         const std::string& options_json, const ModelConfig& config);

}  // namespace mlawb
