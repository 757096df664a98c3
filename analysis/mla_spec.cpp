// MlaSpec: parsing, canonical text and the checks against one model. Every refusal is an
// mlawb::Error("", "--mla", "<key>: <reason>") so the CLI prints "error: --mla: r: ...".
#include "analysis/mla_spec.h"

#include "analysis/strategies.h"
#include "core/config.h"
#include "core/error.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

namespace mlawb {

const char* svd_mode_name(SvdMode mode) {
    switch (mode) {
    case SvdMode::Joint: return "joint";
    case SvdMode::Split: return "split";
    case SvdMode::None: break;
    }
    return "none";
}

namespace {

const char* const kOption = "--mla";

// The keys in their canonical order (to_string writes them in this order).
const std::vector<std::string>& spec_keys() {
    static const std::vector<std::string> keys = {"strategy", "r",       "d_kv",    "svd",      "start",   "scores",
                                                  "calib",    "mask",    "variant", "kv_bits",  "kv_group", "residual"};
    return keys;
}

const std::vector<std::string> kSvdNames = {"joint", "split", "none"};
const std::vector<std::string> kVariants = {"product", "sum"};
const std::vector<std::string> kKvBits = {"16", "8", "4", "2"};

[[noreturn]] void refuse(const std::string& message) { throw Error("", kOption, message); }

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
    return out;
}

std::string trim(const std::string& s) {
    const size_t begin = s.find_first_not_of(" \t");
    if (begin == std::string::npos) return "";
    return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

// Largest value any integer key takes (2^30). Real settings are far below it (r <= head_dim/2,
// d_kv <= a few thousand, residual <= a context length); the cap keeps the size arithmetic in
// validate_sizes (products with the model's head counts and widths) inside int64.
constexpr int64_t kMaxSpecInteger = int64_t(1) << 30;

int64_t parse_integer(const std::string& key, const std::string& value, int64_t min) {
    int64_t v = 0;
    const char* end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(value.data(), end, v);
    if (ec == std::errc::result_out_of_range && ptr == end)
        refuse(key + ": " + value + " is too large (at most " + std::to_string(kMaxSpecInteger) + ")");
    if (ec != std::errc() || ptr != end) refuse(key + ": '" + value + "' is not an integer");
    if (v < min) refuse(key + ": must be at least " + std::to_string(min) + " (got " + value + ")");
    if (v > kMaxSpecInteger)
        refuse(key + ": " + value + " is too large (at most " + std::to_string(kMaxSpecInteger) + ")");
    return v;
}

// Largest head_dim and KV head count validate_sizes accepts from a config (2^20 each; real
// models have head_dim <= 256 and at most a few hundred KV heads), for the same reason.
constexpr int64_t kMaxModelDimension = int64_t(1) << 20;

const std::string& one_of(const std::string& key, const std::string& value, const std::vector<std::string>& allowed) {
    if (std::find(allowed.begin(), allowed.end(), value) == allowed.end())
        refuse(key + ": '" + value + "' is not one of " + join(allowed));
    return value;
}

// Checks that need no model: key ranges and the combinations no model can have.
void check_model_free(const MlaSpec& s) {
    find_strategy(s.strategy);  // throws listing the names
    if (s.r != -1 && s.r < 1) refuse("r: must be at least 1 (got " + std::to_string(s.r) + ")");
    if (s.r == -1 && s.strategy != "full" && s.strategy != "custom")
        refuse("r: strategy " + s.strategy + " needs r (RoPE pairs kept per head), e.g. r=4");
    if (s.start < 0) refuse("start: must be at least 0 (got " + std::to_string(s.start) + ")");
    if (s.d_kv != -1 && s.d_kv < 1) refuse("d_kv: must be at least 1 (got " + std::to_string(s.d_kv) + ")");
    if (s.svd != SvdMode::None && s.d_kv < 1)
        refuse(std::string("svd: ") + svd_mode_name(s.svd) + " needs d_kv (latent width per KV head), e.g. d_kv=16");
    if (s.svd == SvdMode::None && s.d_kv != -1)
        refuse("d_kv: given with svd=none; a latent needs svd=joint or svd=split");
    if (s.svd == SvdMode::Split && s.d_kv % 2 != 0)
        refuse("d_kv: svd=split needs an even d_kv (d_kv/2 each for W_k,nope and W_v; got " + std::to_string(s.d_kv) + ")");
    if (!s.scores_file.empty() && !s.calib_file.empty())
        refuse("scores: give either scores=FILE or calib=FILE, not both");
    one_of("variant", s.variant, kVariants);
    one_of("kv_bits", std::to_string(s.kv_bits), kKvBits);
    for (const auto& [key, value] : {std::pair<const char*, int64_t>{"r", s.r}, {"d_kv", s.d_kv}, {"start", s.start},
                                     {"kv_group", s.kv_group}, {"residual", s.residual}})
        if (value > kMaxSpecInteger)  // a struct filled in by code rather than parse()
            refuse(std::string(key) + ": " + std::to_string(value) + " is too large (at most " +
                   std::to_string(kMaxSpecInteger) + ")");
    if (s.kv_group < 1) refuse("kv_group: must be at least 1 (got " + std::to_string(s.kv_group) + ")");
    if (s.residual < 0) refuse("residual: must be at least 0 (got " + std::to_string(s.residual) + ")");
}

// The quantized cache groups each token's values of one cached part (all heads) in runs of
// kv_group; a group must not straddle a tail: kv_group divides the part's width, or the part
// is narrower than one group (then it is one group). widths: name -> values per token.
void check_group_divides(const MlaSpec& s, const std::vector<std::pair<std::string, int64_t>>& widths) {
    if (s.kv_bits >= 16) return;
    for (const auto& [name, width] : widths)
        if (width > s.kv_group && width % s.kv_group != 0)
            refuse("kv_group: " + std::to_string(s.kv_group) + " does not divide the cached " + name + " width of " +
                   std::to_string(width) + " values per token (use a divisor, or a group at least as wide)");
}

// Largest d_kv (per KV head) whose latent n_kv x d_kv fits the rank of the matrix it
// factorizes: rank <= min(rows, columns), columns = hidden.
int64_t max_latent_per_head(int64_t rows, int64_t hidden, int64_t n_kv) { return std::min(rows, hidden) / n_kv; }

}  // namespace

MlaSpec MlaSpec::parse(const std::string& text) {
    if (trim(text).empty())
        refuse("empty setting; expected key=value pairs such as strategy=2-norm,r=4,d_kv=16,svd=joint (keys: " +
               join(spec_keys()) + ")");
    MlaSpec spec;
    std::set<std::string> seen;
    std::stringstream items(text);
    std::string item;
    while (std::getline(items, item, ',')) {
        item = trim(item);
        if (item.empty()) refuse("empty item in '" + text + "'");
        const size_t eq = item.find('=');
        if (eq == std::string::npos) refuse("'" + item + "' is not key=value (keys: " + join(spec_keys()) + ")");
        const std::string key = trim(item.substr(0, eq));
        const std::string value = trim(item.substr(eq + 1));
        const auto& keys = spec_keys();
        if (std::find(keys.begin(), keys.end(), key) == keys.end())
            refuse("unknown key '" + key + "' (keys: " + join(keys) + ")");
        if (!seen.insert(key).second) refuse(key + ": given twice");
        if (value.empty()) refuse(key + ": empty value");

        if (key == "strategy") spec.strategy = find_strategy(value).name;
        else if (key == "r") spec.r = parse_integer(key, value, 1);
        else if (key == "d_kv") spec.d_kv = parse_integer(key, value, 1);
        else if (key == "svd") {
            const std::string& name = one_of(key, value, kSvdNames);
            spec.svd = name == "joint" ? SvdMode::Joint : name == "split" ? SvdMode::Split : SvdMode::None;
        } else if (key == "start") spec.start = parse_integer(key, value, 0);
        else if (key == "scores") spec.scores_file = value;
        else if (key == "calib") spec.calib_file = value;
        else if (key == "mask") spec.mask_file = value;
        else if (key == "variant") spec.variant = one_of(key, value, kVariants);
        else if (key == "kv_bits") spec.kv_bits = std::stoi(one_of(key, value, kKvBits));
        else if (key == "kv_group") spec.kv_group = parse_integer(key, value, 1);
        else if (key == "residual") spec.residual = parse_integer(key, value, 0);
    }
    // A trailing comma leaves getline nothing to report; refuse it like an inner empty item.
    if (trim(text).back() == ',') refuse("empty item in '" + text + "'");
    if (!seen.count("svd") && spec.d_kv != -1) spec.svd = SvdMode::Joint;
    check_model_free(spec);
    return spec;
}

std::string MlaSpec::to_string() const {
    const MlaSpec defaults;
    std::ostringstream s;
    s << "strategy=" << strategy;
    if (r != defaults.r) s << ",r=" << r;
    if (d_kv != defaults.d_kv) s << ",d_kv=" << d_kv;
    if (svd != defaults.svd) s << ",svd=" << svd_mode_name(svd);
    if (start != defaults.start) s << ",start=" << start;
    if (!scores_file.empty()) s << ",scores=" << scores_file;
    if (!calib_file.empty()) s << ",calib=" << calib_file;
    if (!mask_file.empty()) s << ",mask=" << mask_file;
    if (variant != defaults.variant) s << ",variant=" << variant;
    if (kv_bits != defaults.kv_bits) s << ",kv_bits=" << kv_bits;
    if (kv_group != defaults.kv_group) s << ",kv_group=" << kv_group;
    if (residual != defaults.residual) s << ",residual=" << residual;
    return s.str();
}

int64_t MlaSpec::kept_pairs(const ModelConfig& config) const { return strategy == "full" ? config.head_dim / 2 : r; }

void MlaSpec::validate_sizes(const ModelConfig& config) const {
    check_model_free(*this);
    const int64_t d = config.head_dim, n_kv = config.n_kv_head;
    if (d < 2 || d % 2 != 0 || n_kv < 1)
        throw Error(config.source, "head_dim",
                    "RoPE pairs need an even head_dim and KV heads (head_dim " + std::to_string(d) + ", " +
                        std::to_string(n_kv) + " KV heads)");
    if (d > kMaxModelDimension || n_kv > kMaxModelDimension || config.hidden < 1)
        throw Error(config.source, d > kMaxModelDimension ? "head_dim" : n_kv > kMaxModelDimension ? "num_key_value_heads" : "hidden_size",
                    "head_dim " + std::to_string(d) + ", " + std::to_string(n_kv) + " KV heads, hidden size " +
                        std::to_string(config.hidden) + ": outside what an MLA setting can be checked against (head_dim and "
                        "KV heads at most " + std::to_string(kMaxModelDimension) + ", hidden size positive)");
    const int64_t pairs = d / 2;

    if (strategy == "full" && r != -1 && r != pairs)
        refuse("r: strategy full keeps all " + std::to_string(pairs) + " pairs per head; leave r out or set r=" +
               std::to_string(pairs) + " (got " + std::to_string(r) + ")");
    if (r > pairs)
        refuse("r: " + std::to_string(r) + " pairs per head exceed head_dim/2 (head_dim " + std::to_string(d) + " = " +
               std::to_string(pairs) + " pairs per head)");
    if (strategy == "uniform") {
        // MHA2MLA's S_uniform: pairs {s, s+D, s+2D, ...}, D = (d/2)/r.
        const int64_t step = pairs / r;
        const int64_t last = start + (r - 1) * step;
        if (last >= pairs)
            refuse("start: uniform with r=" + std::to_string(r) + " steps by " + std::to_string(step) + " pairs, so start " +
                   std::to_string(start) + " reaches pair " + std::to_string(last) + " past the last pair " +
                   std::to_string(pairs - 1) + " (start at most " + std::to_string(pairs - 1 - (r - 1) * step) + ")");
    }
    const int64_t kept_for_cache = kept_pairs(config);
    if (svd == SvdMode::None) {
        if (strategy == "full" || kept_for_cache < 0)
            check_group_divides(*this, {{"k", n_kv * d}, {"v", n_kv * d}});
        else
            check_group_divides(*this, {{"k_rope", n_kv * 2 * kept_for_cache},
                                        {"k_nope", n_kv * (d - 2 * kept_for_cache)},
                                        {"v", n_kv * d}});
        return;
    }
    if (kept_for_cache >= 0)
        check_group_divides(*this, {{"c_kv", n_kv * d_kv}, {"k_rope", n_kv * 2 * kept_for_cache}});
    if (r == -1 && strategy == "custom")
        refuse("r: strategy custom with svd=" + std::string(svd_mode_name(svd)) +
               " needs r (pairs per head in the mask): the latent's size depends on it");

    // Rows of W_k,nope (the non-RoPE dims of all KV heads) and of W_v; both have `hidden` columns.
    const int64_t kept = kept_pairs(config);
    const int64_t rows_k_nope = n_kv * (d - 2 * kept), rows_v = n_kv * d;
    const auto latent = [&] {
        return std::to_string(n_kv) + " x " + std::to_string(d_kv) + " = " + std::to_string(n_kv * d_kv);
    };
    if (svd == SvdMode::Joint) {
        // Joint SVD factorizes [W_k,nope; W_v] (stacked on the output axis) at rank n_kv x d_kv.
        const int64_t rows = rows_k_nope + rows_v;
        const int64_t max_d_kv = max_latent_per_head(rows, config.hidden, n_kv);
        if (d_kv > max_d_kv)
            refuse("d_kv: latent n_kv x d_kv = " + latent() + " exceeds the rank of the joint matrix [W_k,nope; W_v] (" +
                   std::to_string(rows) + " rows x " + std::to_string(config.hidden) + " columns); d_kv at most " +
                   std::to_string(max_d_kv));
        return;
    }
    // Split SVD factorizes W_k,nope and W_v separately, each at rank n_kv x d_kv/2.
    if (rows_k_nope == 0)
        refuse("svd: split needs W_k,nope, but r=" + std::to_string(kept) +
               " keeps RoPE on every pair; use svd=joint or a smaller r");
    const int64_t max_half =
        std::min(max_latent_per_head(rows_k_nope, config.hidden, n_kv), max_latent_per_head(rows_v, config.hidden, n_kv));
    if (d_kv / 2 > max_half)
        refuse("d_kv: split gives W_k,nope (" + std::to_string(rows_k_nope) + " rows) and W_v (" + std::to_string(rows_v) +
               " rows), each " + std::to_string(config.hidden) + " columns, rank n_kv x d_kv/2 each; latent " + latent() +
               " is too wide; d_kv at most " + std::to_string(2 * max_half));
}

void MlaSpec::validate(const ModelConfig& config) const {
    validate_sizes(config);
    const StrategyInfo& info = find_strategy(strategy);
    if (info.needs_scores && scores_file.empty() && calib_file.empty())
        refuse("strategy: " + strategy +
               " needs 2-norm scores: scores=FILE (from mlawb rope-scores --out) or calib=FILE (calibration text)");
    if (strategy == "custom" && mask_file.empty())
        refuse("mask: strategy custom needs mask=FILE holding {\"kept_pairs\": [layer][kv_head][pairs]}");
}

}  // namespace mlawb
