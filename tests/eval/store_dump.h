// Every row of every table of a results store, ids included, as text: "merging again changes
// nothing" compares two of these (tests of mlawb merge and sweep).
#pragma once

#include "eval/sqlite_test_support.h"
#include "eval/store_merge.h"

#include <string>

inline std::string dump_all(const std::string& db) {
    std::string out;
    for (const mlawb::MergeTable& t : mlawb::merge_tables()) {
        std::string cols;
        for (const std::string& c : t.columns) cols += (cols.empty() ? "quote(" : " || '|' || quote(") + c + ")";
        for (const std::string& row : query_column(db, "SELECT " + cols + " FROM " + t.name + " ORDER BY rowid"))
            out += std::string(t.name) + ": " + row + "\n";
    }
    return out;
}
