// Multiple choice by log-likelihood, as lm-evaluation-harness scores it: for each choice, the
// summed log-probability of the choice's tokens after the query (the continuation's tokens are
// those of encode(query + choice) past encode(query)); acc = the most likely choice is the gold
// one; acc_norm = the same with each log-likelihood divided by the choice's length in bytes.
// Data: JSONL lines {"query": str, "choices": [str], "gold": int, "_id"?: str}.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mlawb {

struct LoadedModel;

struct MultipleChoiceItem {
    std::string id;  // _id, else "line-<n>"
    std::string query;
    std::vector<std::string> choices;
    int64_t gold = 0;
    int64_t line = 0;
};

struct MultipleChoiceResult {
    std::string id;
    std::vector<double> loglikelihoods;  // nats, one per choice
    int64_t predicted = 0, predicted_norm = 0;
    bool correct = false, correct_norm = false;
    int64_t prompt_tokens = 0;
};

// Reads the file; malformed lines throw (strict) or are listed in `malformed` ("file:line: ...").
std::vector<MultipleChoiceItem> load_multiple_choice(const std::string& path, bool strict,
                                                     std::vector<std::string>& malformed);

MultipleChoiceResult score_multiple_choice(LoadedModel& model, const MultipleChoiceItem& item);

}  // namespace mlawb
