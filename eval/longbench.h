// LongBench data as-is: a folder of <dataset>.jsonl records (input, context, answers, length,
// dataset, language, all_classes, _id) with dataset2prompt.json, dataset2maxlen.json and
// (ours, optional) dataset2metric.json. Malformed lines are reported with file and line.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mlawb {

struct LongBenchRecord {
    std::string id;                        // _id
    std::string input, context;
    std::vector<std::string> answers;
    std::vector<std::string> all_classes;  // empty when null
    int64_t length = 0;                    // words of context (LongBench-E buckets by it)
    std::string dataset, language;
    int64_t line = 0;                      // 1-based line in the .jsonl file
};

struct LongBenchDataset {
    std::string name;
    std::string file;
    std::vector<LongBenchRecord> records;
    std::vector<std::string> malformed;    // "<file>:<line>: <field>: <reason>" per skipped line
};

class LongBenchTaskSet {
public:
    // Reads the folder's dataset2prompt.json and dataset2maxlen.json (required) and
    // dataset2metric.json (optional); lists the datasets with a .jsonl file.
    static LongBenchTaskSet open(const std::string& folder);

    const std::string& folder() const { return folder_; }
    const std::vector<std::string>& datasets() const { return datasets_; }  // sorted
    // strict: the first malformed line throws; otherwise such lines are skipped and listed.
    LongBenchDataset load(const std::string& dataset, bool strict) const;
    const std::string& prompt_template(const std::string& dataset) const;  // throws naming the dataset
    int64_t max_new_tokens(const std::string& dataset) const;
    // From dataset2metric.json, else the official LongBench mapping; "" when neither knows it.
    std::string metric_name(const std::string& dataset) const;

private:
    std::string folder_;
    std::vector<std::string> datasets_;
    std::map<std::string, std::string> prompts_;
    std::map<std::string, int64_t> maxlen_;
    std::map<std::string, std::string> metrics_;
};

// The template with {context} and {input} filled in, as Python's str.format does it
// ({{ and }} stand for literal braces).
std::string fill_prompt(const std::string& prompt_template, const LongBenchRecord& record);

// Parses one JSONL line; throws mlawb::Error("<file>:<line>", field, reason).
LongBenchRecord parse_longbench_record(const std::string& line_text, const std::string& file, int64_t line);

}  // namespace mlawb
