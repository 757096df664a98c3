// MLA conversion on the command line: `mlawb convert`, and the `--mla SPEC` option every model
// command takes (the model is converted in memory right after loading).
#include "app/cli/commands.h"
#include "app/cli/progress.h"

#include "analysis/calibration.h"
#include "analysis/convert.h"
#include "analysis/export.h"
#include "analysis/setting.h"
#include "core/error.h"
#include "core/llama_model.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>

namespace mlawb::cli {

using json = nlohmann::json;

RopeScores calibrate_with_progress(LoadedModel& model, const std::string& calib_file, const std::string& variant, Io& io) {
    ProgressLine progress(io.err, "calibration");
    CalibrationOptions options;
    options.variant = variant;
    options.progress = [&](int64_t done, int64_t total) { progress.update(done, total, done, "windows/s"); };
    RopeScores scores = calibrate_rope_scores_from_file(model, calib_file, options);
    progress.finish();
    return scores;
}

std::function<RopeScores(const std::string&)> folder_calibrator(const std::string& folder, const std::string& variant,
                                                                Io& io) {
    return [folder, variant, &io](const std::string& calib_file) {
        if (!std::filesystem::is_directory(folder))
            throw Error(folder, "", "calib= needs a model folder (weights and tokenizer), not a bare config.json");
        LoadedModel model = load_model(folder);
        return calibrate_with_progress(model, calib_file, variant, io);
    };
}

std::optional<ResolvedSetting> apply_mla_option(LoadedModel& m, const ParsedArgs& args, Io& io) {
    if (!args.has("--mla")) return std::nullopt;
    MlaSpec spec = MlaSpec::parse(args.value("--mla"));
    if (m.config.mla.present)
        throw Error(m.folder + "/config.json", "mla",
                    "this model is already converted to MLA (" + m.config.mla.spec + "); drop --mla or start from the original");
    auto calibrate = [&](const std::string& calib_file) {
        RopeScores scores;  // forward passes on --device (float32); conversion below on the CPU
        on_device_in_f32(m, args, [&] { scores = calibrate_with_progress(m, calib_file, spec.variant, io); });
        return scores;
    };
    ResolvedSetting setting = resolve_setting(spec, m.config, calibrate);
    if (!setting.spec.is_original()) convert_to_mla(*m.model, setting.spec, setting.kept);
    // kv_bits / kv_group / residual: every cache the model makes from now on (after calibration).
    m.model->set_cache_options(CacheOptions{setting.spec.kv_bits, setting.spec.kv_group, setting.spec.residual});
    return setting;
}

namespace {

int cmd_convert(const ParsedArgs& a, Io& io) {
    require_positional(a, 1, "mlawb convert MODEL --mla SPEC --out DIR");
    if (!a.has("--mla")) throw Error("", "--mla", "required");
    if (!a.has("--out")) throw Error("", "--out", "required");
    LoadedModel m = load_model(a.positional[0]);
    std::optional<ResolvedSetting> setting = apply_mla_option(m, a, io);
    if (setting->spec.is_original())
        throw Error("", "--mla", "strategy=full with svd=none is the original model: nothing to convert");
    ExportRequest req{m.folder, a.value("--out"), setting->spec, setting->kept,
                      setting->scores ? &setting->scores->provenance : nullptr};
    export_mla_model(*m.model, req);
    const ModelConfig& c = m.config;
    const int64_t r = setting->kept.count(0, 0);
    const int64_t per_layer = setting->spec.svd == SvdMode::None ? 2 * c.n_kv_head * c.head_dim
                                                                 : c.n_kv_head * (2 * r + setting->spec.d_kv);
    if (a.flag("--json")) {
        io.out << json{{"out", req.out_folder},
                       {"spec", setting->spec.to_string()},
                       {"kv_elements_per_token_layer", per_layer},
                       {"original_kv_elements_per_token_layer", c.kv_elements_per_token_layer()}}
                      .dump(2)
               << "\n";
    } else {
        io.out << "wrote " << req.out_folder << " (" << setting->spec.to_string() << "): KV cache " << per_layer
               << " elements per token per layer, original " << c.kv_elements_per_token_layer() << "\n";
    }
    return 0;
}

}  // namespace

std::vector<Command> convert_commands() {
    return {
        {"convert", "mlawb convert MODEL --mla SPEC --out DIR [--json] [--device D]",
         "convert to MLA (partial RoPE + joint/split SVD) and export a folder that mlawb loads as an MLA model",
         with_device_options({{"--mla", "--out", "--threads"}, {"--json", "--help"}}), cmd_convert},
    };
}

}  // namespace mlawb::cli
