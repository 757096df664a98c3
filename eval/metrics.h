// LongBench's metrics (THUDM/LongBench metrics.py and eval.py) behaving as the official Python
// does, a registry by the official names, the official dataset -> metric mapping, the score
// aggregation of eval.py (scorer, scorer_e) and of our fixtures (buckets of prompt tokens), and
// the scoring of a folder of LongBench prediction files as `python eval.py` scores it.
//
// Every metric maps (prediction, ground truth, all_classes) to [0, 1]. The Chinese metrics
// qa_f1_zh_score and rouge_zh_score need jieba word segmentation, which is not implemented:
// find_metric refuses them with an Error instead of scoring Chinese text some other way.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace mlawb {

using MetricFn = std::function<double(const std::string& prediction, const std::string& ground_truth,
                                      const std::vector<std::string>& all_classes)>;

// ---- the metrics (UTF-8 in; lengths and characters are code points as in Python) ----

// Token F1 of normalize_answer(prediction).split() against the ground truth's, with multiset
// (Counter) intersection; 0 when nothing is shared.
double qa_f1_score(const std::string& prediction, const std::string& ground_truth);
// ROUGE-L F as the `rouge` package (1.0.1, Rouge() defaults) computes it; 0 where that package
// raises (an empty hypothesis or reference after splitting on '.', or Python's recursion limit
// hit while backtracking the LCS), because LongBench's rouge_score catches every exception.
double rouge_score(const std::string& prediction, const std::string& ground_truth);
// Class names found in the prediction, minus those removed by LongBench's loop (see .cpp);
// 1 / len(matches) when the ground truth is among them, else 0. Needs all_classes.
double classification_score(const std::string& prediction, const std::string& ground_truth,
                            const std::vector<std::string>& all_classes);
// N = the number in the ground truth's first "Paragraph N" ("段落N" for the _zh variant); the
// share of the prediction's digit runs equal to N (0 when it has none).
double retrieval_score(const std::string& prediction, const std::string& ground_truth);
double retrieval_zh_score(const std::string& prediction, const std::string& ground_truth);
// The share of the prediction's digit runs equal to the ground truth string (0 when none).
// retrieval_score_digits (our fixtures' passkey metric) is defined the same way.
double count_score(const std::string& prediction, const std::string& ground_truth);
double retrieval_score_digits(const std::string& prediction, const std::string& ground_truth);
// fuzz.ratio(line, ground_truth) / 100 where line is the first line of
// prediction.lstrip('\n') containing none of '`', '#', "//" ("" when every line does).
double code_sim_score(const std::string& prediction, const std::string& ground_truth);

// ---- registry ----

// Every name the registry knows, the refused Chinese ones included (sorted).
std::vector<std::string> metric_names();
// The metric called `name`; throws Error("", name, ...) for unknown names and for the metrics
// that need jieba. The reference stays valid for the life of the program.
const MetricFn& find_metric(const std::string& name);

// ---- datasets ----

// LongBench (v1 and LongBench-E) dataset -> metric name, as in the official eval.py.
const std::map<std::string, std::string>& official_dataset_metrics();
// The official metric name of `dataset`; "" when LongBench has no such dataset.
std::string official_metric_name(const std::string& dataset);
// trec, triviaqa, samsum, lsht: eval.py keeps only prediction.lstrip('\n').split('\n')[0].
bool uses_first_line_rule(const std::string& dataset);
// Score of one record: the first-line rule for the datasets above, then the maximum of the
// metric over the answers (0 when there are none).
double score_record(const MetricFn& metric, const std::string& dataset, const std::string& prediction,
                    const std::vector<std::string>& answers, const std::vector<std::string>& all_classes);

// ---- aggregation (percent, two decimals, Python's round: ties to even on the exact value) ----

// eval.py's scorer: round(100 * total / n, 2) with total summed in order. Throws when empty.
double longbench_dataset_score(const std::vector<double>& record_scores);
// numpy.mean of a float64 vector: numpy's pairwise summation, then divided by n; NaN when empty.
double numpy_mean(const std::vector<double>& values);
// eval.py's scorer_e: {"0-4k", "4-8k", "8k+"} by the records' `length` (< 4000, < 8000, else),
// each round(100 * numpy.mean(bucket), 2); an empty bucket is NaN as numpy makes it.
std::map<std::string, double> longbench_e_scores(const std::vector<double>& record_scores,
                                                 const std::vector<int64_t>& lengths);
// Bucket of a prompt of `tokens` tokens for strictly increasing `edges` starting at 0:
// "lo-hi" for lo <= tokens < hi, "last+" from the last edge on. Throws for bad edges.
std::string token_bucket(int64_t tokens, const std::vector<int64_t>& edges);
// The fixtures' scores of one dataset: {"<dataset>": s} and {"<dataset>@<bucket>": s} for every
// non-empty token bucket, each as longbench_dataset_score computes it.
std::map<std::string, double> dataset_and_bucket_scores(const std::string& dataset,
                                                        const std::vector<double>& record_scores,
                                                        const std::vector<int64_t>& prompt_tokens,
                                                        const std::vector<int64_t>& edges);
// Mean of the dataset scores, rounded to two decimals. Throws when empty.
double overall_score(const std::map<std::string, double>& dataset_scores);

// ---- LongBench prediction folders (eval.py) ----

struct PredictionFileScore {
    std::string dataset;  // the file name up to its first '.'
    std::string file;
    std::string metric;
    int64_t records = 0;
    double score = 0;                           // without --e
    std::map<std::string, double> length_scores;  // with --e: "0-4k", "4-8k", "8k+" (NaN: empty)
};

// Scores every file of `folder` whose name ends in "jsonl" (sorted by name) as eval.py does:
// each line {"pred", "answers", "all_classes", "length"}; the metric from the folder's
// dataset2metric.json if it names the dataset, else the official mapping. As in eval.py, the
// all_classes of a file's last line is used for all its records. Malformed lines (bad JSON,
// missing fields, wrong types; `length` missing with longbench_e) throw
// Error("<file>:<line>", field, reason); a dataset without a metric or whose metric is refused
// throws naming the dataset.
std::vector<PredictionFileScore> score_prediction_folder(const std::string& folder, bool longbench_e);

}  // namespace mlawb
