#include "app/gui/GuiSetting.h"

#include "analysis/convert.h"
#include "analysis/export.h"
#include "analysis/strategies.h"
#include "core/config.h"
#include "core/error.h"
#include "core/llama_model.h"

#include <filesystem>

namespace mlawb::gui {

ResolvedSetting resolve_gui_setting(const MlaSpec& spec, const ModelConfig& config,
                                    const std::optional<RopeScores>& scores) {
    const StrategyInfo& strategy = find_strategy(spec.strategy);
    if (!strategy.needs_scores || !spec.scores_file.empty() || !spec.calib_file.empty())
        return resolve_setting(spec, config, nullptr);  // as the command line resolves it
    if (!scores)
        throw Error("", "--mla",
                    spec.strategy + " needs 2-norm RoPE scores: calibrate them on the RoPE heatmap tab, or add "
                                    "scores=FILE to the setting");
    spec.validate_sizes(config);
    if (scores->n_layer != config.n_layer || scores->n_kv_head != config.n_kv_head ||
        scores->n_head != config.n_head || scores->n_pairs != config.head_dim / 2)
        throw Error("", "scores",
                    "the RoPE heatmap's scores are for another model shape (" + std::to_string(scores->n_layer) +
                        " layers, " + std::to_string(scores->n_kv_head) + " KV heads) than " + config.source);
    ResolvedSetting resolved;
    resolved.spec = spec;
    resolved.scores = scores;
    // The spec's variant decides, as resolve_setting does for a scores file.
    if (resolved.scores->variant != spec.variant) resolved.scores->combine(spec.variant);
    StrategyInput input;
    input.config = &config;
    input.r = spec.r;
    input.start = spec.start;
    input.scores = &*resolved.scores;
    resolved.kept = strategy.select(input);
    return resolved;
}

ConvertResult convert_and_save(const ConvertRequest& request,
                               const std::function<void(int64_t done, int64_t total)>& progress,
                               const std::function<bool()>& cancelled) {
    const MlaSpec spec = MlaSpec::parse(request.spec);
    if (spec.is_original())
        throw Error("", "--mla", "strategy=full with svd=none is the original model: nothing to convert");
    if (request.out_folder.empty()) throw Error("", "out", "no output folder chosen");
    if (std::filesystem::exists(request.out_folder))
        throw Error(request.out_folder, "", "already exists; choose a new folder name");
    LoadedModel model = load_model(request.model_folder);
    if (model.config.mla.present)
        throw Error(request.model_folder + "/config.json", "mla",
                    "this model is already converted to MLA (" + model.config.mla.spec + "); start from the original");
    const ResolvedSetting setting = resolve_gui_setting(spec, model.config, request.scores);
    if (cancelled && cancelled()) throw Cancelled();
    ConvertOptions options;
    options.progress = progress;
    options.cancelled = cancelled;
    convert_to_mla(*model.model, setting.spec, setting.kept, options);
    if (cancelled && cancelled()) throw Cancelled();
    ExportRequest out{model.folder, request.out_folder, setting.spec, setting.kept,
                      setting.scores ? &setting.scores->provenance : nullptr};
    export_mla_model(*model.model, out);

    ConvertResult result;
    result.out_folder = request.out_folder;
    result.spec = setting.spec.to_string();
    const ModelConfig& c = model.config;
    const int64_t r = setting.kept.count(0, 0);
    result.kv_elements_per_token_layer =
        setting.spec.svd == SvdMode::None ? 2 * c.n_kv_head * c.head_dim : c.n_kv_head * (2 * r + setting.spec.d_kv);
    result.original_kv_elements_per_token_layer = c.kv_elements_per_token_layer();
    return result;
}

}  // namespace mlawb::gui
