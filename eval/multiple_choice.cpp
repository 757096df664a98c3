#include "eval/multiple_choice.h"

#include "core/error.h"
#include "core/json_io.h"
#include "core/llama_model.h"

#include <fstream>
#include <nlohmann/json.hpp>

namespace mlawb {

using json = nlohmann::json;

namespace {

MultipleChoiceItem parse_item(const std::string& text, const std::string& file, int64_t line) {
    const std::string where = file + ":" + std::to_string(line);
    const json j = parse_json_object_line(text, where);
    MultipleChoiceItem item;
    item.line = line;
    if (!j.contains("query") || !j["query"].is_string()) throw Error(where, "query", "missing or not a string");
    item.query = j["query"].get<std::string>();
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].size() < 2)
        throw Error(where, "choices", "expected a list of at least two strings");
    for (const json& c : j["choices"]) {
        if (!c.is_string()) throw Error(where, "choices", "expected strings");
        item.choices.push_back(c.get<std::string>());
    }
    if (!j.contains("gold") || !j["gold"].is_number_integer()) throw Error(where, "gold", "missing or not an integer");
    item.gold = j["gold"].get<int64_t>();
    if (item.gold < 0 || item.gold >= static_cast<int64_t>(item.choices.size()))
        throw Error(where, "gold", "index outside the choices");
    item.id = j.contains("_id") && j["_id"].is_string() ? j["_id"].get<std::string>() : "line-" + std::to_string(line);
    return item;
}

}  // namespace

std::vector<MultipleChoiceItem> load_multiple_choice(const std::string& path, bool strict,
                                                     std::vector<std::string>& malformed) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path, "", "cannot open multiple-choice file");
    std::vector<MultipleChoiceItem> items;
    std::string text;
    int64_t line = 0;
    while (std::getline(in, text)) {
        ++line;
        if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
            items.push_back(parse_item(text, path, line));
        } catch (const Error& e) {
            if (strict) throw;
            malformed.push_back(e.what());
        }
    }
    return items;
}

MultipleChoiceResult score_multiple_choice(LoadedModel& m, const MultipleChoiceItem& item) {
    torch::NoGradGuard no_grad;
    MultipleChoiceResult r;
    r.id = item.id;
    const std::vector<int32_t> context = m.tokenizer.encode(item.query);
    r.prompt_tokens = static_cast<int64_t>(context.size());
    double best = -1e300, best_norm = -1e300;
    for (size_t c = 0; c < item.choices.size(); ++c) {
        std::vector<int32_t> whole = m.tokenizer.encode(item.query + item.choices[c]);
        // lm-eval: the continuation is what encode(query + choice) adds past encode(query).
        size_t split = context.size();
        if (whole.size() <= split || !std::equal(context.begin(), context.end(), whole.begin())) {
            split = 0;
            while (split < context.size() && split < whole.size() && context[split] == whole[split]) ++split;
        }
        if (split == 0 || split >= whole.size())
            throw Error("", "choices", "choice " + std::to_string(c) + " of " + item.id + " adds no tokens after the query");
        std::vector<int64_t> ids(whole.begin(), whole.end());
        KVCache cache = m.model->make_cache();
        torch::Tensor logp = torch::log_softmax(m.model->forward(torch::tensor(ids).unsqueeze(0), cache)[0], -1);
        double ll = 0;
        for (size_t t = split; t < ids.size(); ++t) ll += logp[t - 1][ids[t]].item<double>();
        r.loglikelihoods.push_back(ll);
        const double norm = ll / std::max<size_t>(1, item.choices[c].size());
        if (ll > best) {
            best = ll;
            r.predicted = static_cast<int64_t>(c);
        }
        if (norm > best_norm) {
            best_norm = norm;
            r.predicted_norm = static_cast<int64_t>(c);
        }
    }
    r.correct = r.predicted == item.gold;
    r.correct_norm = r.predicted_norm == item.gold;
    return r;
}

}  // namespace mlawb
