// SQLite helpers for tests that look at a results file from their own connection, as the
// sqlite3 CLI would: no ResultsStore code in between.
#pragma once

#include <cstdint>
#include <sqlite3.h>
#include <string>
#include <vector>

// A query on our own connection, to see the file as the sqlite3 CLI would.
inline std::vector<std::string> query_column(const std::string& db_path, const std::string& sql) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
        sqlite3_close(db);
        return {"open failed"};
    }
    sqlite3_stmt* stmt = nullptr;
    std::vector<std::string> rows;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK)
        while (sqlite3_step(stmt) == SQLITE_ROW) {
            const unsigned char* text = sqlite3_column_text(stmt, 0);
            rows.push_back(text ? reinterpret_cast<const char*>(text) : "NULL");
        }
    else
        rows.push_back(std::string("prepare failed: ") + sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return rows;
}

inline int64_t count_rows(const std::string& db_path, const std::string& sql) {
    const auto rows = query_column(db_path, sql);
    return rows.size() == 1 ? std::stoll(rows[0]) : -1;
}

inline void exec_raw(const std::string& db_path, const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open(db_path.c_str(), &db);
    sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    sqlite3_close(db);
}

