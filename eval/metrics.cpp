#include "eval/metrics.h"

#include "core/error.h"
#include "core/json_io.h"
#include "eval/sequence_matcher.h"
#include "eval/text_normalize.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

namespace mlawb {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// f1_score of LongBench: Counter(prediction) & Counter(ground_truth), precision and recall.
double token_f1(const std::vector<std::u32string>& prediction, const std::vector<std::u32string>& ground_truth) {
    std::unordered_map<std::u32string, int64_t> truth_counts;
    for (const auto& token : ground_truth) ++truth_counts[token];
    int64_t same = 0;
    for (const auto& token : prediction) {
        auto it = truth_counts.find(token);
        if (it != truth_counts.end() && it->second > 0) {
            --it->second;
            ++same;
        }
    }
    if (same == 0) return 0.0;
    const double precision = 1.0 * static_cast<double>(same) / static_cast<double>(prediction.size());
    const double recall = 1.0 * static_cast<double>(same) / static_cast<double>(ground_truth.size());
    return (2 * precision * recall) / (precision + recall);
}

// The share of `numbers` equal to `target`; 0 when there are no numbers (LongBench's
// count_score / retrieval_score: right_num / len(numbers)).
double share_equal(const std::vector<std::u32string>& numbers, const std::u32string& target) {
    if (numbers.empty()) return 0.0;
    const auto right = std::count(numbers.begin(), numbers.end(), target);
    return static_cast<double>(right) / static_cast<double>(numbers.size());
}

// ---- ROUGE-L of the `rouge` package (rouge_score.rouge_l_summary_level, exclusive=True) ----

// Rouge._get_scores: [" ".join(s.split()) for s in text.split(".") if len(s) > 0], each sentence
// then split on " " (so a blank piece becomes the single word "").
std::vector<std::vector<std::u32string>> rouge_sentences(const std::string& text) {
    std::vector<std::vector<std::u32string>> sentences;
    for (const std::u32string& piece : pytext::split_on(pytext::decode_utf8(text), U'.')) {
        if (piece.empty()) continue;
        std::vector<std::u32string> words = pytext::split_whitespace(piece);
        if (words.empty()) words.emplace_back();
        sentences.push_back(std::move(words));
    }
    return sentences;
}

// CPython's default recursion limit is 1000 frames. When eval.py scores a summary, nine frames
// are live below rouge_score's LCS backtracking (<module>, scorer, rouge_score,
// Rouge.get_scores, _get_avg_scores, the rouge-l lambda, rouge_l_summary_level, _union_lcs,
// _recon_lcs); _recon then recurses once per step. Deeper than that, Python raises
// RecursionError, which LongBench's bare `except` turns into a score of 0 (checked against the
// package under Python 3.11: a 990-word sentence scores, a 991-word one scores 0).
constexpr size_t kPythonRecursionLimit = 1000;
constexpr size_t kFramesBelowLcsBacktrack = 9;

struct RecursionLimitHit {};

// _recon_lcs(x, y): the words of one LCS of x and y, chosen by the package's backtracking
// (equal words: diagonal; else up when table[i-1][j] > table[i][j-1], otherwise left).
void add_lcs_words(const std::vector<int>& x, const std::vector<int>& y, std::unordered_set<int>& words) {
    const size_t n = x.size(), m = y.size();
    // Each backtracking step lowers i or j by at most one and it stops at i == 0 or j == 0, so
    // it takes at least min(n, m) steps: past the limit no table is needed. Below it, LCS
    // lengths stay under 1000 and fit 16 bits.
    if (kFramesBelowLcsBacktrack + std::min(n, m) + 1 > kPythonRecursionLimit) throw RecursionLimitHit{};
    std::vector<uint16_t> table((n + 1) * (m + 1), 0);
    auto at = [&](size_t i, size_t j) -> uint16_t& { return table[i * (m + 1) + j]; };
    for (size_t i = 1; i <= n; ++i)
        for (size_t j = 1; j <= m; ++j)
            at(i, j) = x[i - 1] == y[j - 1] ? static_cast<uint16_t>(at(i - 1, j - 1) + 1) : std::max(at(i - 1, j), at(i, j - 1));
    size_t i = n, j = m, frames = 1;
    std::vector<int> found;
    while (i > 0 && j > 0) {
        if (x[i - 1] == y[j - 1]) {
            found.push_back(x[i - 1]);
            --i;
            --j;
        } else if (at(i - 1, j) > at(i, j - 1)) {
            --i;
        } else {
            --j;
        }
        ++frames;
    }
    if (kFramesBelowLcsBacktrack + frames > kPythonRecursionLimit) throw RecursionLimitHit{};
    words.insert(found.begin(), found.end());
}

double rouge_l_f(const std::vector<std::vector<std::u32string>>& hypothesis,
                 const std::vector<std::vector<std::u32string>>& reference) {
    std::unordered_map<std::u32string, int> ids;  // words as integers for the LCS tables
    auto to_ids = [&](const std::vector<std::u32string>& words) {
        std::vector<int> out;
        for (const auto& w : words) out.push_back(ids.emplace(w, static_cast<int>(ids.size())).first->second);
        return out;
    };
    std::vector<std::vector<int>> hyp, ref;
    std::unordered_set<int> hyp_vocabulary, ref_vocabulary;
    for (const auto& sentence : hypothesis) {
        hyp.push_back(to_ids(sentence));
        hyp_vocabulary.insert(hyp.back().begin(), hyp.back().end());
    }
    for (const auto& sentence : reference) {
        ref.push_back(to_ids(sentence));
        ref_vocabulary.insert(ref.back().begin(), ref.back().end());
    }
    // With exclusive=True the package's Ngrams are sets: m and n count distinct words, and the
    // union LCS of all (reference, hypothesis) sentence pairs is a set of distinct words.
    std::unordered_set<int> union_lcs;
    for (const auto& r : ref)
        for (const auto& h : hyp) add_lcs_words(r, h, union_lcs);
    const double llcs = static_cast<double>(union_lcs.size());
    const double r_lcs = llcs / static_cast<double>(ref_vocabulary.size());
    const double p_lcs = llcs / static_cast<double>(hyp_vocabulary.size());
    return 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8));
}

// ---- registry ----

constexpr const char* kJiebaRefusal =
    "needs jieba Chinese word segmentation, which is not implemented; Chinese datasets scored by it "
    "(multifieldqa_zh, dureader, vcsum) are refused rather than scored another way";

struct MetricEntry {
    MetricFn fn;          // empty for refused metrics
    std::string refusal;  // why find_metric refuses it
};

MetricFn ignoring_classes(double (*metric)(const std::string&, const std::string&)) {
    return [metric](const std::string& p, const std::string& g, const std::vector<std::string>&) { return metric(p, g); };
}

const std::map<std::string, MetricEntry>& registry() {
    static const std::map<std::string, MetricEntry> entries = {
        {"qa_f1_score", {ignoring_classes(qa_f1_score), ""}},
        {"qa_f1_zh_score", {MetricFn(), kJiebaRefusal}},
        {"rouge_score", {ignoring_classes(rouge_score), ""}},
        {"rouge_zh_score", {MetricFn(), kJiebaRefusal}},
        {"classification_score", {classification_score, ""}},
        {"retrieval_score", {ignoring_classes(retrieval_score), ""}},
        {"retrieval_zh_score", {ignoring_classes(retrieval_zh_score), ""}},
        {"count_score", {ignoring_classes(count_score), ""}},
        {"code_sim_score", {ignoring_classes(code_sim_score), ""}},
        {"retrieval_score_digits", {ignoring_classes(retrieval_score_digits), ""}},
    };
    return entries;
}

}  // namespace

// ---- the metrics ----

double qa_f1_score(const std::string& prediction, const std::string& ground_truth) {
    return token_f1(pytext::split_whitespace(pytext::normalize_answer(prediction)),
                    pytext::split_whitespace(pytext::normalize_answer(ground_truth)));
}

double rouge_score(const std::string& prediction, const std::string& ground_truth) {
    const auto hypothesis = rouge_sentences(prediction);
    const auto reference = rouge_sentences(ground_truth);
    // rouge_n and rouge_l_summary_level raise ValueError on an empty sentence list.
    if (hypothesis.empty() || reference.empty()) return 0.0;
    try {
        return rouge_l_f(hypothesis, reference);
    } catch (const RecursionLimitHit&) {
        return 0.0;
    }
}

double classification_score(const std::string& prediction, const std::string& ground_truth,
                            const std::vector<std::string>& all_classes) {
    std::vector<std::string> matches;
    for (const std::string& name : all_classes)
        if (prediction.find(name) != std::string::npos) matches.push_back(name);
    // LongBench removes, while iterating over the same list, each match that is a substring of
    // the ground truth without being equal to it. Python's list iterator then skips the element
    // that slid into the removed one's place; that behaviour is kept: index i still advances.
    for (size_t i = 0; i < matches.size(); ++i) {
        const std::string term = matches[i];
        if (ground_truth.find(term) != std::string::npos && term != ground_truth)
            matches.erase(std::find(matches.begin(), matches.end(), term));  // list.remove: first equal
    }
    const bool hit = std::find(matches.begin(), matches.end(), ground_truth) != matches.end();
    return hit ? 1.0 / static_cast<double>(matches.size()) : 0.0;
}

double retrieval_score(const std::string& prediction, const std::string& ground_truth) {
    const std::u32string id = pytext::first_number_after(pytext::decode_utf8(ground_truth), U"Paragraph ");
    if (id.empty())
        throw Error("", "retrieval_score", "ground truth '" + ground_truth + "' has no 'Paragraph N'");
    return share_equal(pytext::digit_runs(pytext::decode_utf8(prediction)), id);
}

double retrieval_zh_score(const std::string& prediction, const std::string& ground_truth) {
    const std::u32string id = pytext::first_number_after(pytext::decode_utf8(ground_truth), U"段落");
    if (id.empty()) throw Error("", "retrieval_zh_score", "ground truth '" + ground_truth + "' has no '段落N'");
    return share_equal(pytext::digit_runs(pytext::decode_utf8(prediction)), id);
}

double count_score(const std::string& prediction, const std::string& ground_truth) {
    return share_equal(pytext::digit_runs(pytext::decode_utf8(prediction)), pytext::decode_utf8(ground_truth));
}

double retrieval_score_digits(const std::string& prediction, const std::string& ground_truth) {
    return count_score(prediction, ground_truth);
}

double code_sim_score(const std::string& prediction, const std::string& ground_truth) {
    std::string chosen;
    const size_t start = prediction.find_first_not_of('\n');
    for (size_t begin = start; begin != std::string::npos && begin <= prediction.size();) {
        const size_t end = std::min(prediction.find('\n', begin), prediction.size());
        const std::string line = prediction.substr(begin, end - begin);
        if (line.find('`') == std::string::npos && line.find('#') == std::string::npos &&
            line.find("//") == std::string::npos) {
            chosen = line;
            break;
        }
        begin = end + 1;
    }
    return fuzz_ratio(chosen, ground_truth) / 100.0;
}

// ---- registry ----

std::vector<std::string> metric_names() {
    std::vector<std::string> names;
    for (const auto& [name, entry] : registry()) names.push_back(name);
    return names;
}

const MetricFn& find_metric(const std::string& name) {
    auto it = registry().find(name);
    if (it == registry().end()) {
        std::string known;
        for (const auto& n : metric_names()) known += (known.empty() ? "" : ", ") + n;
        throw Error("", name, "unknown metric (known: " + known + ")");
    }
    if (!it->second.fn) throw Error("", name, it->second.refusal);
    return it->second.fn;
}

// ---- datasets ----

const std::map<std::string, std::string>& official_dataset_metrics() {
    static const std::map<std::string, std::string> mapping = {
        {"narrativeqa", "qa_f1_score"},        {"qasper", "qa_f1_score"},
        {"multifieldqa_en", "qa_f1_score"},    {"multifieldqa_zh", "qa_f1_zh_score"},
        {"hotpotqa", "qa_f1_score"},           {"2wikimqa", "qa_f1_score"},
        {"musique", "qa_f1_score"},            {"dureader", "rouge_zh_score"},
        {"gov_report", "rouge_score"},         {"qmsum", "rouge_score"},
        {"multi_news", "rouge_score"},         {"vcsum", "rouge_zh_score"},
        {"trec", "classification_score"},      {"triviaqa", "qa_f1_score"},
        {"samsum", "rouge_score"},             {"lsht", "classification_score"},
        {"passage_retrieval_en", "retrieval_score"}, {"passage_count", "count_score"},
        {"passage_retrieval_zh", "retrieval_zh_score"}, {"lcc", "code_sim_score"},
        {"repobench-p", "code_sim_score"},
    };
    return mapping;
}

std::string official_metric_name(const std::string& dataset) {
    auto it = official_dataset_metrics().find(dataset);
    return it == official_dataset_metrics().end() ? "" : it->second;
}

bool uses_first_line_rule(const std::string& dataset) {
    return dataset == "trec" || dataset == "triviaqa" || dataset == "samsum" || dataset == "lsht";
}

double score_record(const MetricFn& metric, const std::string& dataset, const std::string& prediction,
                    const std::vector<std::string>& answers, const std::vector<std::string>& all_classes) {
    const std::string scored = uses_first_line_rule(dataset) ? pytext::first_line(prediction) : prediction;
    double score = 0.0;
    for (const std::string& truth : answers) score = std::max(score, metric(scored, truth, all_classes));
    return score;
}

// ---- aggregation ----

double longbench_dataset_score(const std::vector<double>& record_scores) {
    if (record_scores.empty()) throw Error("", "scores", "no records to score (eval.py divides by their count)");
    double total = 0.0;
    for (double s : record_scores) total += s;
    return pytext::round_half_even(100 * total / static_cast<double>(record_scores.size()), 2);
}

namespace {

// numpy's pairwise_sum for float64 (8 accumulators in blocks of up to 128, halves beyond).
double numpy_pairwise_sum(const double* a, size_t n) {
    if (n < 8) {
        double sum = 0.;
        for (size_t i = 0; i < n; ++i) sum += a[i];
        return sum;
    }
    if (n <= 128) {
        double r[8];
        for (size_t k = 0; k < 8; ++k) r[k] = a[k];
        size_t i = 8;
        for (; i < n - (n % 8); i += 8)
            for (size_t k = 0; k < 8; ++k) r[k] += a[i + k];
        double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; ++i) sum += a[i];
        return sum;
    }
    size_t half = n / 2;
    half -= half % 8;
    return numpy_pairwise_sum(a, half) + numpy_pairwise_sum(a + half, n - half);
}

}  // namespace

double numpy_mean(const std::vector<double>& values) {
    if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
    // add.reduce starts from the identity 0.0, then adds the pairwise sum of the whole array.
    return (0.0 + numpy_pairwise_sum(values.data(), values.size())) / static_cast<double>(values.size());
}

std::map<std::string, double> longbench_e_scores(const std::vector<double>& record_scores,
                                                 const std::vector<int64_t>& lengths) {
    if (record_scores.size() != lengths.size())
        throw Error("", "length", "every record needs a length for LongBench-E buckets");
    std::map<std::string, std::vector<double>> buckets{{"0-4k", {}}, {"4-8k", {}}, {"8k+", {}}};
    for (size_t i = 0; i < record_scores.size(); ++i)
        buckets[lengths[i] < 4000 ? "0-4k" : lengths[i] < 8000 ? "4-8k" : "8k+"].push_back(record_scores[i]);
    std::map<std::string, double> out;
    for (const auto& [name, scores] : buckets) out[name] = pytext::round_half_even(100 * numpy_mean(scores), 2);
    return out;
}

std::string token_bucket(int64_t tokens, const std::vector<int64_t>& edges) {
    if (edges.empty() || edges.front() != 0) throw Error("", "bucket edges", "must start at 0");
    for (size_t b = 1; b < edges.size(); ++b)
        if (edges[b] <= edges[b - 1]) throw Error("", "bucket edges", "must increase strictly");
    if (tokens < 0) throw Error("", "prompt_tokens", "negative token count " + std::to_string(tokens));
    for (size_t b = 0; b + 1 < edges.size(); ++b)
        if (tokens < edges[b + 1]) return std::to_string(edges[b]) + "-" + std::to_string(edges[b + 1]);
    return std::to_string(edges.back()) + "+";
}

std::map<std::string, double> dataset_and_bucket_scores(const std::string& dataset,
                                                        const std::vector<double>& record_scores,
                                                        const std::vector<int64_t>& prompt_tokens,
                                                        const std::vector<int64_t>& edges) {
    if (record_scores.size() != prompt_tokens.size())
        throw Error("", dataset, "scores and prompt token counts differ in number");
    std::map<std::string, std::vector<double>> buckets;
    for (size_t i = 0; i < record_scores.size(); ++i)
        buckets[dataset + "@" + token_bucket(prompt_tokens[i], edges)].push_back(record_scores[i]);
    std::map<std::string, double> out{{dataset, longbench_dataset_score(record_scores)}};
    for (const auto& [key, scores] : buckets) out[key] = longbench_dataset_score(scores);
    return out;
}

double overall_score(const std::map<std::string, double>& dataset_scores) {
    if (dataset_scores.empty()) throw Error("", "scores", "no datasets to average");
    double total = 0.0;
    for (const auto& [name, score] : dataset_scores) total += score;
    return pytext::round_half_even(total / static_cast<double>(dataset_scores.size()), 2);
}

// ---- LongBench prediction folders ----

namespace {

struct PredictionLine {
    std::string pred;
    std::vector<std::string> answers, all_classes;
    bool has_length = false;
    int64_t length = 0;
};

std::vector<std::string> string_list(const json& v, const std::string& where, const char* field) {
    if (!v.is_array()) throw Error(where, field, std::string("expected a list of strings, got ") + v.type_name());
    std::vector<std::string> out;
    for (const json& s : v) {
        if (!s.is_string()) throw Error(where, field, std::string("expected strings in the list, got ") + s.type_name());
        out.push_back(s.get<std::string>());
    }
    return out;
}

PredictionLine parse_prediction_line(const std::string& text, const std::string& where) {
    // Any JSON error is the file's (a number out of double range is out_of_range, not a
    // parse_error), and the nesting is capped.
    const json j = parse_json_text(text, where);
    if (!j.is_object()) throw Error(where, "", std::string("expected a JSON object, got ") + j.type_name());
    PredictionLine p;
    if (!j.contains("pred")) throw Error(where, "pred", "missing");
    if (!j["pred"].is_string()) throw Error(where, "pred", std::string("expected a string, got ") + j["pred"].type_name());
    p.pred = j["pred"].get<std::string>();
    if (!j.contains("answers")) throw Error(where, "answers", "missing");
    p.answers = string_list(j["answers"], where, "answers");
    // eval.py reads data["all_classes"]: the key must be there; null means no classes.
    if (!j.contains("all_classes")) throw Error(where, "all_classes", "missing (null when the dataset has no classes)");
    if (!j["all_classes"].is_null()) p.all_classes = string_list(j["all_classes"], where, "all_classes");
    if (j.contains("length")) {
        if (!j["length"].is_number_integer())
            throw Error(where, "length", std::string("expected an integer, got ") + j["length"].type_name());
        p.has_length = true;
        p.length = j["length"].get<int64_t>();
    }
    return p;
}

std::map<std::string, std::string> folder_dataset_metrics(const std::string& folder) {
    std::map<std::string, std::string> mapping = official_dataset_metrics();
    const std::string path = folder + "/dataset2metric.json";
    if (!fs::exists(path)) return mapping;
    const json j = read_json_file(path);
    if (!j.is_object()) throw Error(path, "", "expected an object {dataset: metric}");
    for (const auto& [dataset, metric] : j.items()) {
        if (!metric.is_string()) throw Error(path, dataset, "expected a metric name");
        mapping[dataset] = metric.get<std::string>();
    }
    return mapping;
}

PredictionFileScore score_prediction_file(const fs::path& path, const std::map<std::string, std::string>& metrics,
                                          bool longbench_e) {
    PredictionFileScore result;
    result.file = path.string();
    const std::string filename = path.filename().string();
    result.dataset = filename.substr(0, filename.find('.'));  // eval.py: filename.split('.')[0]
    auto known = metrics.find(result.dataset);
    if (known == metrics.end())
        throw Error(result.file, result.dataset, "no metric for this dataset (not an official LongBench dataset; "
                                                 "name its metric in dataset2metric.json)");
    result.metric = known->second;
    const MetricFn* metric = nullptr;
    try {
        metric = &find_metric(result.metric);
    } catch (const Error& e) {
        throw Error(result.file, result.dataset, "metric " + result.metric + ": " + e.reason());
    }

    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(result.file, "", "cannot open");
    std::vector<PredictionLine> lines;
    std::vector<int64_t> line_numbers;
    std::string text;
    for (int64_t number = 1; std::getline(in, text); ++number) {
        if (!text.empty() && text.back() == '\r') text.pop_back();  // Python's universal newlines
        const std::string where = result.file + ":" + std::to_string(number);
        if (text.find_first_not_of(" \t") == std::string::npos)
            throw Error(where, "", "empty line (eval.py's json.loads fails on it)");
        lines.push_back(parse_prediction_line(text, where));
        if (longbench_e && !lines.back().has_length) throw Error(where, "length", "missing (needed by --e)");
        line_numbers.push_back(number);
    }
    if (lines.empty()) throw Error(result.file, "", "no predictions");
    // eval.py keeps the all_classes of the last line it read and scores every record with it.
    const std::vector<std::string>& all_classes = lines.back().all_classes;
    std::vector<double> scores;
    std::vector<int64_t> lengths;
    for (size_t i = 0; i < lines.size(); ++i) {
        try {
            scores.push_back(score_record(*metric, result.dataset, lines[i].pred, lines[i].answers, all_classes));
        } catch (const Error& e) {
            throw Error(result.file + ":" + std::to_string(line_numbers[i]), e.field(), e.reason());
        }
        lengths.push_back(lines[i].length);
    }
    result.records = static_cast<int64_t>(lines.size());
    if (longbench_e) result.length_scores = longbench_e_scores(scores, lengths);
    else result.score = longbench_dataset_score(scores);
    return result;
}

}  // namespace

std::vector<PredictionFileScore> score_prediction_folder(const std::string& folder, bool longbench_e) {
    if (!fs::is_directory(folder)) throw Error(folder, "", "not a folder of prediction files");
    const auto metrics = folder_dataset_metrics(folder);
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(folder)) {
        const std::string name = entry.path().filename().string();
        // eval.py: every name ending in "jsonl"
        if (entry.is_regular_file() && name.size() >= 5 && name.compare(name.size() - 5, 5, "jsonl") == 0)
            files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) throw Error(folder, "", "no <dataset>.jsonl prediction files");
    std::vector<PredictionFileScore> results;
    for (const fs::path& file : files) {
        PredictionFileScore scored = score_prediction_file(file, metrics, longbench_e);
        for (const auto& earlier : results)
            if (earlier.dataset == scored.dataset)  // eval.py would silently keep whichever it listed last
                throw Error(scored.file, scored.dataset, "second prediction file for this dataset (also " + earlier.file + ")");
        results.push_back(std::move(scored));
    }
    return results;
}

}  // namespace mlawb
