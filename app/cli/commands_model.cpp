// Model commands: info, tokenize, generate, perplexity.
#include "app/cli/commands.h"
#include "app/cli/progress.h"

#include "core/error.h"
#include "core/generate.h"
#include "core/llama_model.h"
#include "core/model_summary.h"
#include "core/tokenizer.h"
#include "eval/perplexity.h"

#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>

namespace mlawb::cli {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

json summary_json(const ModelSummary& s) {
    const ModelConfig& c = s.config;
    json rope = {{"theta", c.rope_theta}, {"scaling", rope_type_name(c.rope_scaling.type)}};
    if (c.rope_scaling.type != RopeScaling::Type::Default) rope["factor"] = c.rope_scaling.factor;
    if (c.rope_scaling.type == RopeScaling::Type::Llama3) {
        rope["low_freq_factor"] = c.rope_scaling.low_freq_factor;
        rope["high_freq_factor"] = c.rope_scaling.high_freq_factor;
        rope["original_max_position_embeddings"] = c.rope_scaling.original_max_position_embeddings;
    }
    json layers = json::array();
    for (const auto& l : s.layers)
        layers.push_back({{"layer", l.index}, {"attention_params", l.attention_params}, {"mlp_params", l.mlp_params},
                          {"norm_params", l.norm_params}, {"q_heads", l.q_heads}, {"kv_heads", l.kv_heads},
                          {"head_dim", l.head_dim}, {"kv_elements_per_token", l.kv_elements_per_token}});
    json j = {{"folder", s.folder},
              {"config_only", s.config_only},
              {"model_type", c.model_type},
              {"architecture", c.architecture},
              {"attention", c.is_mha() ? "MHA" : "GQA"},
              {"parameters", s.parameter_count},
              {"layers", c.n_layer},
              {"q_heads", c.n_head},
              {"kv_heads", c.n_kv_head},
              {"head_dim", c.head_dim},
              {"hidden", c.hidden},
              {"ffn", c.ffn},
              {"vocab", c.vocab},
              {"context", c.max_position},
              {"rms_norm_eps", c.rms_eps},
              {"tie_word_embeddings", c.tie_word_embeddings},
              {"qkv_bias", c.qkv_bias},
              {"sliding_window", c.sliding_window},
              {"rope", rope},
              {"stored_dtype", s.weights_dtype.empty() ? c.stored_dtype : s.weights_dtype},
              {"weight_bytes", s.weight_bytes},
              {"weight_files", s.weight_files},
              {"kv_elements_per_token", s.kv_elements_per_token()},
              {"kv_bytes_per_token_stored", s.kv_bytes_per_token(s.stored_bytes_per_element())},
              {"kv_bytes_per_token_fp16", s.kv_bytes_per_token(2)},
              {"kv_bytes_per_token_engine_f32", s.kv_bytes_per_token(4)},
              {"per_layer", layers}};
    if (c.mla.present)
        j["mla"] = {{"spec", c.mla.spec}, {"svd", c.mla.svd}, {"r", c.mla.r}, {"d_kv", c.mla.d_kv},
                    {"kept_pairs", c.mla.kept_pairs}};
    return j;
}

void print_summary(std::ostream& out, const ModelSummary& s) {
    const ModelConfig& c = s.config;
    out << "model        " << (s.config_only ? c.source : s.folder) << (s.config_only ? "  (config only)" : "") << "\n"
        << "architecture " << c.architecture << " (model_type " << c.model_type << ", " << (c.is_mha() ? "MHA" : "GQA")
        << ")\n"
        << "parameters   " << s.parameter_count << " (" << std::fixed << std::setprecision(2)
        << static_cast<double>(s.parameter_count) / 1e6 << " M)\n"
        << "layers       " << c.n_layer << "\n"
        << "heads        " << c.n_head << " query / " << c.n_kv_head << " key-value (group " << c.group_size() << ")\n"
        << "head_dim     " << c.head_dim << "\n"
        << "hidden       " << c.hidden << ", ffn " << c.ffn << ", vocab " << c.vocab << "\n"
        << "context      " << c.max_position << (c.sliding_window ? ", sliding window " + std::to_string(c.sliding_window) : "")
        << "\n"
        << "rope         theta " << std::setprecision(1) << c.rope_theta << ", scaling " << rope_type_name(c.rope_scaling.type);
    if (c.rope_scaling.type != RopeScaling::Type::Default) out << " x" << c.rope_scaling.factor;
    out << "\n"
        << "embeddings   " << (c.tie_word_embeddings ? "tied" : "untied") << (c.qkv_bias ? ", q/k/v biases" : "") << "\n";
    if (!s.config_only)
        out << "weights      " << s.weights_dtype << ", " << s.weight_bytes << " bytes in " << s.weight_files << " file(s)\n";
    if (c.mla.present)
        out << "MLA          " << c.mla.spec << " (svd " << c.mla.svd << ", r " << c.mla.r << ", d_kv " << c.mla.d_kv << ")\n";
    out << "KV cache     " << s.kv_elements_per_token() << " elements/token ("
        << (c.mla.present && c.mla.svd != "none" ? "c_kv + k_rope" : "K+V") << ", all layers); "
        << s.kv_bytes_per_token(s.stored_bytes_per_element()) << " B/token stored dtype, " << s.kv_bytes_per_token(2)
        << " B/token fp16\n\n";
    out << "layer  attn params  mlp params  q heads  kv heads  head_dim  KV elem/token\n";
    for (const auto& l : s.layers)
        out << std::setw(5) << l.index << std::setw(13) << l.attention_params << std::setw(12) << l.mlp_params
            << std::setw(9) << l.q_heads << std::setw(10) << l.kv_heads << std::setw(10) << l.head_dim << std::setw(15)
            << l.kv_elements_per_token << "\n";
}

int cmd_info(const ParsedArgs& a, Io& io) {
    require_positional(a, 1, "mlawb info MODEL [--json] [--config-only]");
    const std::string& target = a.positional[0];
    ModelSummary s;
    if (a.flag("--config-only")) {
        std::string config = fs::is_directory(target) ? target + "/config.json" : target;
        s = ModelSummary::from_config_file(config);
    } else {
        s = ModelSummary::from_folder(target);
    }
    // The engine's cache at --device/--dtype (checked here: a bad value fails before any work);
    // a device list shows which layers each device would hold (--layer-split checked here too).
    const Placement where = placement_of(a).resolved(s.config.n_layer);
    const int64_t engine_kv = s.kv_bytes_per_token(static_cast<int>(c10::elementSize(where.dtype)));
    if (a.flag("--json")) {
        json j = summary_json(s);
        j["engine"] = {{"device", where.device.str()}, {"dtype", dtype_name(where.dtype)}, {"kv_bytes_per_token", engine_kv}};
        if (where.pipelined()) {
            json stages = json::array();
            int64_t first = 0;
            for (size_t k = 0; k < where.stages.size(); ++k) {
                stages.push_back({{"device", where.stages[k].str()}, {"first_layer", first}, {"layers", where.split[k]}});
                first += where.split[k];
            }
            j["engine"]["stages"] = stages;
            j["engine"]["placement"] = where.to_string();
        }
        io.out << j.dump(2) << "\n";
    } else {
        print_summary(io.out, s);
        io.out << "engine       " << where.to_string() << ": KV cache " << engine_kv << " B/token (all layers)\n";
    }
    return 0;
}

Tokenizer tokenizer_of(const std::string& model_folder) {
    const std::string path = fs::is_directory(model_folder) ? model_folder + "/tokenizer.json" : model_folder;
    return Tokenizer::from_file(path);
}

int cmd_tokenize(const ParsedArgs& a, Io& io) {
    require_positional(a, 2, "mlawb tokenize MODEL TEXT [--json]");
    Tokenizer tok = tokenizer_of(a.positional[0]);
    std::vector<int32_t> ids = tok.encode(a.positional[1]);
    if (a.flag("--json")) {
        json tokens = json::array();
        for (int32_t id : ids) tokens.push_back(tok.id_to_token(id));
        io.out << json{{"ids", ids}, {"tokens", tokens}}.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    } else {
        for (size_t i = 0; i < ids.size(); ++i) io.out << (i ? " " : "") << ids[i];
        io.out << "\n";
    }
    return 0;
}

std::vector<int64_t> widen(const std::vector<int32_t>& ids) { return std::vector<int64_t>(ids.begin(), ids.end()); }

int cmd_generate(const ParsedArgs& a, Io& io) {
    require_positional(a, 1, "mlawb generate MODEL --prompt TEXT [--max-new N] [--json]");
    if (!a.has("--prompt")) throw Error("", "--prompt", "required");
    LoadedModel m = load_model(a.positional[0]);
    std::optional<ResolvedSetting> setting = apply_mla_option(m, a, io);
    apply_device_option(m, a);
    GenerateOptions options;
    options.max_new_tokens = a.integer("--max-new", 64, 1, 1 << 20);
    std::vector<int64_t> prompt = widen(m.tokenizer.encode(a.value("--prompt")));
    GenerateResult r = greedy_generate(*m.model, prompt, options);
    std::vector<int32_t> out_ids(r.ids.begin(), r.ids.end());
    const std::string text = m.tokenizer.decode(out_ids);
    const double decode_tps = r.ids.size() > 1 && r.decode_seconds > 0 ? (r.ids.size() - 1) / r.decode_seconds : 0.0;
    if (a.flag("--json")) {
        io.out << json{{"ids", r.ids},
                       {"text", text},
                       {"prompt_tokens", r.prompt_tokens},
                       {"stopped_at_eos", r.stopped_at_eos},
                       {"prefill_seconds", r.prefill_seconds},
                       {"decode_tokens_per_second", decode_tps},
                       {"kv_cache_bytes", r.cache_bytes},
                       {"mla", setting ? setting->spec.to_string() : (m.config.mla.present ? m.config.mla.spec : "")}}
                      // Output cut after N tokens (or from an untrained model) can hold
                      // ill-formed UTF-8: written as U+FFFD, as tokenizers' lossy decode would.
                      .dump(-1, ' ', false, json::error_handler_t::replace)
               << "\n";
    } else {
        io.out << text << "\n";
        io.err << r.prompt_tokens << " prompt tokens, " << r.ids.size() << " generated, " << std::fixed
               << std::setprecision(1) << decode_tps << " tok/s decode, KV cache " << r.cache_bytes << " bytes\n";
    }
    return 0;
}

int cmd_perplexity(const ParsedArgs& a, Io& io) {
    require_positional(a, 1, "mlawb perplexity MODEL --text FILE [--window 2048] [--json]");
    if (!a.has("--text")) throw Error("", "--text", "required");
    const std::string text_path = a.value("--text");
    const std::string text = read_text_file(text_path);
    LoadedModel m = load_model(a.positional[0]);
    std::optional<ResolvedSetting> setting = apply_mla_option(m, a, io);
    apply_device_option(m, a);
    std::vector<int64_t> ids = widen(m.tokenizer.encode(text));
    PerplexityOptions options;
    options.window = a.integer("--window", 2048, 2, 1 << 20);
    options.max_windows = a.integer("--max-windows", -1, -1, 1LL << 40);
    ProgressLine progress(io.err, "perplexity");
    options.progress = [&](int64_t done, int64_t total, int64_t tokens) { progress.update(done, total, tokens, "tok/s"); };
    PerplexityResult r = compute_perplexity(*m.model, ids, options);
    progress.finish();
    const double tps = r.seconds > 0 ? r.tokens_total / r.seconds : 0.0;
    if (a.flag("--json")) {
        io.out << json{{"perplexity", r.perplexity},
                       {"tokens_scored", r.tokens_scored},
                       {"tokens_total", r.tokens_total},
                       {"windows", r.windows},
                       {"window", r.window},
                       {"nll_nats", r.total_nll},
                       {"seconds", r.seconds},
                       {"tokens_per_second", tps},
                       {"text", text_path},
                       {"mla", setting ? setting->spec.to_string() : (m.config.mla.present ? m.config.mla.spec : "")},
                       {"model", m.folder}}
                      .dump(2)
               << "\n";
    } else {
        io.out << "perplexity " << std::fixed << std::setprecision(4) << r.perplexity << "  (" << r.tokens_scored
               << " tokens scored in " << r.windows << " windows of " << r.window << ", " << std::setprecision(0) << tps
               << " tok/s)\n";
    }
    return 0;
}

}  // namespace

std::vector<Command> model_commands() {
    return {
        {"info", "mlawb info MODEL [--json] [--config-only] [--device D[,D...]] [--layer-split N,M] [--dtype T]",
         "architecture, parameters, heads, RoPE settings and KV-cache bytes per token (MODEL: folder, or config.json with --config-only)",
         with_device_options({{}, {"--json", "--config-only", "--help"}}), cmd_info},
        {"tokenize", "mlawb tokenize MODEL TEXT [--json]", "token ids of TEXT under the model's tokenizer.json",
         {{}, {"--json", "--help"}}, cmd_tokenize},
        {"generate", "mlawb generate MODEL --prompt TEXT [--max-new N] [--mla SPEC] [--json] [--threads N] [--device D[,D...]] "
         "[--layer-split N,M] [--dtype T]",
         "greedy continuation with the KV cache, stopping at eos",
         with_device_options({{"--prompt", "--max-new", "--threads", "--mla"}, {"--json", "--help"}}),
         cmd_generate},
        {"perplexity", "mlawb perplexity MODEL --text FILE [--window 2048] [--max-windows N] [--mla SPEC] [--json] [--threads N] "
         "[--device D[,D...]] [--layer-split N,M] [--dtype T]",
         "perplexity over non-overlapping windows (first token of each window not scored)",
         with_device_options({{"--text", "--window", "--max-windows", "--threads", "--mla"}, {"--json", "--help"}}),
         cmd_perplexity},
    };
}

}  // namespace mlawb::cli
