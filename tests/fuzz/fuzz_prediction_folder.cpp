// LongBench prediction files (`mlawb score --pred DIR`, eval.py's input): the input is written
// as <folder>/<dataset>.jsonl (the first byte picks the dataset, so every metric is reached)
// and score_prediction_folder scores it, with and without --e.
#include "eval/metrics.h"
#include "fuzz_support.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

using namespace mlawb;

namespace {

const char* const kDatasets[] = {"hotpotqa", "trec", "samsum", "lcc", "passage_count", "passage_retrieval_en",
                                 "gov_report", "narrativeqa", "passkey"};

// This process's scratch folder, created on the first input and removed when the fuzzer exits.
const std::string& scratch_folder() {
    static const std::string folder = [] {
        std::string f = "/dev/shm/mlawb-fuzz-pred-" + std::to_string(::getpid());
        ::mkdir(f.c_str(), 0700);
        return f;
    }();
    static const bool cleanup_registered = std::atexit([] { ::rmdir(scratch_folder().c_str()); }) == 0;
    (void)cleanup_registered;
    return folder;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::string& folder = scratch_folder();
    const std::string file = folder + "/" + kDatasets[data[0] % (sizeof kDatasets / sizeof kDatasets[0])] + ".jsonl";
    {
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
    }
    for (bool longbench_e : {false, true}) {
        fuzz::refuse_only_with_errors([&] {
            for (const PredictionFileScore& s : score_prediction_folder(folder, longbench_e))
                if (!longbench_e) FUZZ_CHECK(s.score >= 0 && s.score <= 100);
        });
    }
    ::unlink(file.c_str());
    return 0;
}
