#include "core/config.h"

#include "core/error.h"
#include "core/json_io.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

namespace mlawb {

using json = nlohmann::json;

const char* rope_type_name(RopeScaling::Type type) {
    switch (type) {
        case RopeScaling::Type::Default: return "default";
        case RopeScaling::Type::Linear: return "linear";
        case RopeScaling::Type::Llama3: return "llama3";
    }
    return "?";
}

const std::vector<std::string>& supported_model_types() {
    static const std::vector<std::string> types = {"llama", "mistral", "qwen2"};
    return types;
}

bool ModelConfig::is_eos(int64_t id) const {
    for (int64_t e : eos_token_ids)
        if (e == id) return true;
    return false;
}

namespace {

// Typed access to config keys; every failure names the file and the key.
class Reader {
public:
    Reader(const json& root, const std::string& source) : root_(root), source_(source) {}

    bool has(const json& obj, const char* key) const {
        return obj.contains(key) && !obj.at(key).is_null();
    }
    int64_t integer(const json& obj, const std::string& path, const char* key) const {
        const json& v = obj.at(key);
        if (!v.is_number_integer()) fail(path + key, "expected an integer, got " + std::string(v.type_name()));
        return v.get<int64_t>();
    }
    int64_t positive(const json& obj, const std::string& path, const char* key) const {
        if (!has(obj, key)) fail(path + key, "missing (required)");
        int64_t x = integer(obj, path, key);
        if (x <= 0) fail(path + key, "must be positive, got " + std::to_string(x));
        return x;
    }
    double number(const json& obj, const std::string& path, const char* key) const {
        const json& v = obj.at(key);
        if (!v.is_number()) fail(path + key, "expected a number, got " + std::string(v.type_name()));
        return v.get<double>();
    }
    bool boolean(const json& obj, const std::string& path, const char* key) const {
        const json& v = obj.at(key);
        if (!v.is_boolean()) fail(path + key, "expected true or false, got " + std::string(v.type_name()));
        return v.get<bool>();
    }
    std::string string(const json& obj, const std::string& path, const char* key) const {
        const json& v = obj.at(key);
        if (!v.is_string()) fail(path + key, "expected a string, got " + std::string(v.type_name()));
        return v.get<std::string>();
    }
    [[noreturn]] void fail(const std::string& field, const std::string& why) const {
        throw Error(source_, field, why);
    }
    const json& root() const { return root_; }

private:
    const json& root_;
    const std::string& source_;
};

// x as a person writes it, for messages: 500000, 32, 1e-05 (the shortest text that reads back
// as x; whole numbers without an exponent).
std::string number_text(double x) {
    if (x == std::floor(x) && std::fabs(x) < 1e15) return std::to_string(static_cast<int64_t>(x));
    for (int precision = 1; precision < 17; ++precision) {
        std::ostringstream shorter;
        shorter << std::setprecision(precision) << x;
        if (std::stod(shorter.str()) == x) return shorter.str();
    }
    std::ostringstream full;
    full << std::setprecision(17) << x;
    return full.str();
}

RopeScaling parse_rope_scaling(const Reader& r, const json& obj, const std::string& path) {
    RopeScaling s;
    std::string type = "default";
    if (r.has(obj, "rope_type")) type = r.string(obj, path, "rope_type");
    else if (r.has(obj, "type")) type = r.string(obj, path, "type");
    if (type == "default") {
        s.type = RopeScaling::Type::Default;
    } else if (type == "linear") {
        s.type = RopeScaling::Type::Linear;
        if (!r.has(obj, "factor")) r.fail(path + "factor", "missing for rope type 'linear'");
        s.factor = r.number(obj, path, "factor");
    } else if (type == "llama3") {
        s.type = RopeScaling::Type::Llama3;
        for (const char* key : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
            if (!r.has(obj, key)) r.fail(path + key, "missing for rope type 'llama3'");
        s.factor = r.number(obj, path, "factor");
        s.low_freq_factor = r.number(obj, path, "low_freq_factor");
        s.high_freq_factor = r.number(obj, path, "high_freq_factor");
        s.original_max_position_embeddings = r.integer(obj, path, "original_max_position_embeddings");
        if (s.high_freq_factor <= s.low_freq_factor)
            r.fail(path + "high_freq_factor", "must exceed low_freq_factor");
    } else {
        r.fail(path + (obj.contains("rope_type") ? "rope_type" : "type"),
               "unsupported RoPE scaling '" + type + "'; supported: default, linear, llama3");
    }
    if (s.factor <= 0) r.fail(path + "factor", "must be positive");
    return s;
}


bool same_scaling(const RopeScaling& a, const RopeScaling& b) {
    if (a.type != b.type) return false;
    if (a.type == RopeScaling::Type::Default) return true;
    if (a.factor != b.factor) return false;
    return a.type != RopeScaling::Type::Llama3 ||
           (a.low_freq_factor == b.low_freq_factor && a.high_freq_factor == b.high_freq_factor &&
            a.original_max_position_embeddings == b.original_max_position_embeddings);
}

// Where the RoPE settings sit: transformers 5 writes `rope_parameters` {rope_theta, rope_type,
// factor, ...}; older files (the hub's) keep `rope_theta` at top level and an optional
// `rope_scaling` object. Both forms are read; where a file carries both, they must agree.
void parse_rope(const Reader& r, const json& root, ModelConfig& c) {
    bool theta_set = false, scaling_set = false;
    if (r.has(root, "rope_parameters")) {
        const json& rp = root["rope_parameters"];
        if (!rp.is_object()) r.fail("rope_parameters", "expected an object");
        if (!rp.contains("rope_theta") && !rp.contains("rope_type") && !rp.contains("type") && !rp.empty() &&
            rp.begin()->is_object())
            r.fail("rope_parameters", "per-layer-type RoPE parameters are not supported (expected one set for every layer)");
        if (r.has(rp, "rope_theta")) {
            c.rope_theta = r.number(rp, "rope_parameters.", "rope_theta");
            theta_set = true;
        }
        if (r.has(rp, "rope_type") || r.has(rp, "type")) {
            c.rope_scaling = parse_rope_scaling(r, rp, "rope_parameters.");
            scaling_set = true;
        }
    }
    if (r.has(root, "rope_theta")) {
        const double theta = r.number(root, "", "rope_theta");
        if (theta_set && theta != c.rope_theta)
            r.fail("rope_theta", number_text(theta) + " contradicts rope_parameters.rope_theta (" +
                                     number_text(c.rope_theta) + ")");
        c.rope_theta = theta;
    }
    if (r.has(root, "rope_scaling")) {
        const json& rs = root["rope_scaling"];
        if (!rs.is_object()) r.fail("rope_scaling", "expected an object or null");
        const RopeScaling scaling = parse_rope_scaling(r, rs, "rope_scaling.");
        if (scaling_set && !same_scaling(scaling, c.rope_scaling))
            r.fail("rope_scaling", std::string("'") + rope_type_name(scaling.type) + "' scaling (factor " +
                                       number_text(scaling.factor) + ") contradicts rope_parameters ('" +
                                       rope_type_name(c.rope_scaling.type) + "', factor " +
                                       number_text(c.rope_scaling.factor) + ")");
        c.rope_scaling = scaling;
    }
    if (c.rope_theta <= 0) r.fail("rope_theta", "must be positive");
}

// Sliding-window attention. transformers 5 lists each layer's kind in `layer_types`
// ("full_attention" / "sliding_attention"); older files say it with `sliding_window` alone
// (Mistral: every layer when set) or, for Qwen2, `use_sliding_window` + `max_window_layers`
// (layers from that index on slide). The engine applies one window to every layer, so a
// model mixing full and sliding layers is refused; a `layer_types` that contradicts the
// older keys is an error.
void parse_sliding_window(const Reader& r, const json& root, ModelConfig& c) {
    int64_t window = 0;  // the window a sliding layer would use; 0 = none configured
    if (r.has(root, "sliding_window")) {
        window = r.integer(root, "", "sliding_window");
        if (window <= 0) r.fail("sliding_window", "must be positive or null, got " + std::to_string(window));
    }
    const bool qwen2 = c.model_type == "qwen2";
    const bool use_sliding = qwen2 ? (r.has(root, "use_sliding_window") && r.boolean(root, "", "use_sliding_window"))
                                   : c.model_type == "mistral";
    // Qwen2Config's default max_window_layers is 28.
    const int64_t max_window_layers =
        qwen2 && r.has(root, "max_window_layers") ? r.integer(root, "", "max_window_layers") : (qwen2 ? 28 : 0);
    std::vector<bool> implied(c.n_layer, false);  // what the older keys say, per layer
    for (int64_t l = 0; l < c.n_layer; ++l) implied[l] = use_sliding && window > 0 && l >= max_window_layers;

    std::vector<bool> sliding = implied;
    if (r.has(root, "layer_types")) {
        const json& types = root["layer_types"];
        if (!types.is_array() || int64_t(types.size()) != c.n_layer)
            r.fail("layer_types", "expected an array of " + std::to_string(c.n_layer) + " layer kinds (num_hidden_layers)");
        for (int64_t l = 0; l < c.n_layer; ++l) {
            const std::string field = "layer_types[" + std::to_string(l) + "]";
            const json& type = types[l];
            if (type == "full_attention") sliding[l] = false;
            else if (type == "sliding_attention") sliding[l] = true;
            else r.fail(field, "unsupported layer kind " + type.dump() + "; supported: full_attention, sliding_attention");
            if (sliding[l] && window <= 0) r.fail(field, "'sliding_attention' needs a sliding_window, which is null");
            if (sliding[l] && qwen2 && !use_sliding)
                r.fail(field, "'sliding_attention' contradicts use_sliding_window false");
            if (!sliding[l] && implied[l])
                r.fail(field, "'full_attention' contradicts use_sliding_window true with max_window_layers " +
                                  std::to_string(max_window_layers));
        }
    }
    const auto count = std::count(sliding.begin(), sliding.end(), true);
    if (count != 0 && count != c.n_layer)
        r.fail(r.has(root, "layer_types") ? "layer_types" : "max_window_layers",
               std::to_string(count) + " of " + std::to_string(c.n_layer) +
                   " layers use a sliding window: models mixing full and sliding-window layers are not supported");
    c.sliding_window = count > 0 ? window : 0;
}

}  // namespace

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& source) {
    // Depth-capped, and every parser exception (syntax, number overflow) becomes an Error.
    const json root = parse_json_text(text, source);
    if (!root.is_object()) throw Error(source, "", "expected a JSON object at top level");
    Reader r(root, source);
    ModelConfig c;
    c.source = source;

    if (!r.has(root, "model_type")) r.fail("model_type", "missing (required)");
    c.model_type = r.string(root, "", "model_type");
    bool supported = false;
    std::string list;
    for (const auto& t : supported_model_types()) {
        supported |= (t == c.model_type);
        list += (list.empty() ? "" : ", ") + t;
    }
    if (!supported)
        r.fail("model_type", "unsupported architecture '" + c.model_type + "'; supported: " + list);
    if (r.has(root, "architectures") && root["architectures"].is_array() && !root["architectures"].empty() &&
        root["architectures"][0].is_string())
        c.architecture = root["architectures"][0].get<std::string>();

    c.hidden = r.positive(root, "", "hidden_size");
    c.ffn = r.positive(root, "", "intermediate_size");
    c.n_layer = r.positive(root, "", "num_hidden_layers");
    // Bound before anything is sized by it (per-layer tables): real models have at most a few
    // hundred layers.
    if (c.n_layer > 65536) r.fail("num_hidden_layers", "implausibly large (" + std::to_string(c.n_layer) + " > 65536)");
    c.n_head = r.positive(root, "", "num_attention_heads");
    c.vocab = r.positive(root, "", "vocab_size");
    // Missing num_key_value_heads means MHA (transformers' default).
    c.n_kv_head = r.has(root, "num_key_value_heads") ? r.positive(root, "", "num_key_value_heads") : c.n_head;
    if (c.n_head % c.n_kv_head != 0)
        r.fail("num_key_value_heads", "must divide num_attention_heads (" + std::to_string(c.n_head) + "), got " +
                                          std::to_string(c.n_kv_head));
    if (r.has(root, "head_dim")) {
        c.head_dim = r.positive(root, "", "head_dim");
    } else {
        if (c.hidden % c.n_head != 0) r.fail("hidden_size", "not divisible by num_attention_heads and no head_dim given");
        c.head_dim = c.hidden / c.n_head;
    }
    if (c.head_dim % 2 != 0) r.fail("head_dim", "must be even for rotary embeddings");
    // Every size is bounded far above real models (Llama-3-405B: hidden 16384, intermediate 53248,
    // vocab 128256, 128 heads) so that the products sized from them (KV elements per token,
    // tensor element counts, up to 2 x 2^16 heads x 2^16 dims x 2^16 layers) stay inside int64.
    const auto cap = [&](int64_t value, int64_t limit, const char* key) {
        if (value > limit)
            r.fail(key, "implausibly large (" + std::to_string(value) + " > " + std::to_string(limit) + ")");
    };
    cap(c.hidden, int64_t{1} << 20, "hidden_size");
    cap(c.ffn, int64_t{1} << 22, "intermediate_size");
    cap(c.vocab, int64_t{1} << 24, "vocab_size");
    cap(c.n_head, int64_t{1} << 16, "num_attention_heads");
    cap(c.head_dim, int64_t{1} << 16, "head_dim");
    c.max_position = r.has(root, "max_position_embeddings") ? r.positive(root, "", "max_position_embeddings") : 2048;
    if (r.has(root, "rms_norm_eps")) c.rms_eps = r.number(root, "", "rms_norm_eps");
    if (r.has(root, "tie_word_embeddings")) c.tie_word_embeddings = r.boolean(root, "", "tie_word_embeddings");
    if (r.has(root, "hidden_act")) {
        std::string act = r.string(root, "", "hidden_act");
        if (act != "silu") r.fail("hidden_act", "unsupported activation '" + act + "'; supported: silu");
    }

    // Biases: Qwen2 always has q/k/v biases and none on o_proj; Llama's attention_bias puts
    // one on all four projections; Mistral has none.
    if (c.model_type == "qwen2") {
        c.qkv_bias = true;
    } else if (c.model_type == "llama" && r.has(root, "attention_bias")) {
        c.qkv_bias = c.o_bias = r.boolean(root, "", "attention_bias");
    }
    if (c.model_type == "llama" && r.has(root, "mlp_bias")) c.mlp_bias = r.boolean(root, "", "mlp_bias");

    parse_rope(r, root, c);
    if (r.has(root, "partial_rotary_factor") && r.number(root, "", "partial_rotary_factor") != 1.0)
        r.fail("partial_rotary_factor", "partial rotary factors other than 1 are not supported");
    parse_sliding_window(r, root, c);

    if (r.has(root, "bos_token_id")) c.bos_token_id = r.integer(root, "", "bos_token_id");
    if (r.has(root, "eos_token_id")) {
        const json& e = root["eos_token_id"];
        if (e.is_array()) {
            for (const auto& x : e) {
                if (!x.is_number_integer()) r.fail("eos_token_id", "expected integers");
                c.eos_token_ids.push_back(x.get<int64_t>());
            }
        } else {
            c.eos_token_ids.push_back(r.integer(root, "", "eos_token_id"));
        }
    }
    if (r.has(root, "mla")) {
        const json& m = root["mla"];
        if (!m.is_object()) r.fail("mla", "expected an object");
        MlaConfig& mla = c.mla;
        mla.present = true;
        for (const char* key : {"svd", "r", "kept_pairs"})
            if (!r.has(m, key)) r.fail(std::string("mla.") + key, "missing (required in a converted model)");
        mla.svd = r.string(m, "mla.", "svd");
        if (mla.svd != "joint" && mla.svd != "split" && mla.svd != "none")
            r.fail("mla.svd", "'" + mla.svd + "' is not one of joint, split, none");
        mla.r = r.integer(m, "mla.", "r");
        if (mla.r < 0 || mla.r > c.head_dim / 2) r.fail("mla.r", "must be between 0 and head_dim/2");
        mla.d_kv = r.has(m, "d_kv") ? r.integer(m, "mla.", "d_kv") : 0;
        if (mla.svd != "none" && mla.d_kv <= 0) r.fail("mla.d_kv", "must be positive for svd " + mla.svd);
        if (mla.svd == "split" && mla.d_kv % 2 != 0) r.fail("mla.d_kv", "must be even for svd split");
        if (r.has(m, "strategy")) mla.strategy = r.string(m, "mla.", "strategy");
        if (r.has(m, "spec")) mla.spec = r.string(m, "mla.", "spec");
        if (r.has(m, "calibration")) mla.calibration_json = m["calibration"].dump();
        const json& kp = m["kept_pairs"];
        if (!kp.is_array() || static_cast<int64_t>(kp.size()) != c.n_layer)
            r.fail("mla.kept_pairs", "expected " + std::to_string(c.n_layer) + " layers");
        for (size_t l = 0; l < kp.size(); ++l) {
            const std::string where = "mla.kept_pairs[" + std::to_string(l) + "]";
            if (!kp[l].is_array() || static_cast<int64_t>(kp[l].size()) != c.n_kv_head)
                r.fail(where, "expected " + std::to_string(c.n_kv_head) + " KV heads");
            std::vector<std::vector<int64_t>> heads;
            for (size_t g = 0; g < kp[l].size(); ++g) {
                const std::string at = where + "[" + std::to_string(g) + "]";
                const json& pairs = kp[l][g];
                if (!pairs.is_array() || static_cast<int64_t>(pairs.size()) != mla.r)
                    r.fail(at, "expected " + std::to_string(mla.r) + " pair indices");
                std::vector<int64_t> list;
                for (const json& p : pairs) {
                    if (!p.is_number_integer() || p.get<int64_t>() < 0 || p.get<int64_t>() >= c.head_dim / 2)
                        r.fail(at, "pair indices must be integers in [0, head_dim/2)");
                    if (!list.empty() && p.get<int64_t>() <= list.back()) r.fail(at, "pair indices must ascend");
                    list.push_back(p.get<int64_t>());
                }
                heads.push_back(std::move(list));
            }
            mla.kept_pairs.push_back(std::move(heads));
        }
    }
    // transformers 5 writes `dtype`, older versions `torch_dtype`; a file with both must agree.
    if (r.has(root, "dtype")) c.stored_dtype = r.string(root, "", "dtype");
    if (r.has(root, "torch_dtype")) {
        const std::string torch_dtype = r.string(root, "", "torch_dtype");
        if (!c.stored_dtype.empty() && torch_dtype != c.stored_dtype)
            r.fail("torch_dtype", "'" + torch_dtype + "' contradicts dtype '" + c.stored_dtype + "'");
        c.stored_dtype = torch_dtype;
    }
    return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path, "", "cannot open config file");
    std::ostringstream text;
    text << in.rdbuf();
    return from_json_text(text.str(), path);
}

}  // namespace mlawb
