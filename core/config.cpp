#include "core/config.h"

#include "core/error.h"

#include <fstream>
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

}  // namespace

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& source) {
    json root;
    try {
        root = json::parse(text);
    } catch (const json::parse_error& e) {
        throw Error(source, "", std::string("malformed JSON: ") + e.what());
    }
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

    // RoPE: rope_parameters (newer transformers) holds theta and type together; older configs
    // keep rope_theta at top level and an optional rope_scaling object.
    if (r.has(root, "rope_parameters")) {
        const json& rp = root["rope_parameters"];
        if (!rp.is_object()) r.fail("rope_parameters", "expected an object");
        if (r.has(rp, "rope_theta")) c.rope_theta = r.number(rp, "rope_parameters.", "rope_theta");
        c.rope_scaling = parse_rope_scaling(r, rp, "rope_parameters.");
    }
    if (r.has(root, "rope_theta")) c.rope_theta = r.number(root, "", "rope_theta");
    if (r.has(root, "rope_scaling")) {
        const json& rs = root["rope_scaling"];
        if (!rs.is_object()) r.fail("rope_scaling", "expected an object or null");
        c.rope_scaling = parse_rope_scaling(r, rs, "rope_scaling.");
    }
    if (c.rope_theta <= 0) r.fail("rope_theta", "must be positive");
    if (r.has(root, "partial_rotary_factor") && r.number(root, "", "partial_rotary_factor") != 1.0)
        r.fail("partial_rotary_factor", "partial rotary factors other than 1 are not supported");

    // Sliding windows: Mistral applies `sliding_window` when set; Qwen2 only with use_sliding_window.
    if (c.model_type == "mistral" && r.has(root, "sliding_window")) c.sliding_window = r.integer(root, "", "sliding_window");
    if (c.model_type == "qwen2" && r.has(root, "use_sliding_window") && r.boolean(root, "", "use_sliding_window") &&
        r.has(root, "sliding_window"))
        c.sliding_window = r.integer(root, "", "sliding_window");

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
    if (r.has(root, "torch_dtype")) c.stored_dtype = r.string(root, "", "torch_dtype");
    else if (r.has(root, "dtype")) c.stored_dtype = r.string(root, "", "dtype");
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
