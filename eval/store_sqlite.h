// Private to the results store (eval/store*.cpp): thin RAII over the SQLite C API so every
// statement is parameterized, finalized, and every failure becomes mlawb::Error naming the
// database file and "<table>: <operation>".
#pragma once

#include "core/error.h"

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mlawb::store_detail {

// Error(db_path, where, reason (SQLite's message)), with a plainer reason for the codes users meet.
[[noreturn]] void throw_sqlite(sqlite3* db, int code, const std::string& db_path, const std::string& where);

class Statement {
public:
    // where: "<table>: <operation>", for messages.
    Statement(sqlite3* db, const std::string& db_path, std::string where, const char* sql);
    ~Statement();
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    // Parameters are 1-based, as in SQL's ?1, ?2, ...
    Statement& bind(int index, int64_t value);
    Statement& bind(int index, double value);
    Statement& bind(int index, const std::string& value);
    Statement& bind(int index, const std::optional<int64_t>& value);  // NULL when absent
    Statement& bind_null(int index);

    bool step();  // true: a row is ready; false: done. Throws on errors.
    void run();   // steps to the end, for statements that return no rows
    void reset(); // ready to bind and run again (bindings cleared)

    bool is_null(int column) const;
    int64_t integer(int column) const;
    double real(int column) const;
    std::string text(int column) const;
    std::optional<int64_t> optional_integer(int column) const;

private:
    void check_bind(int code);
    sqlite3* db_;
    std::string db_path_;
    std::string where_;
    sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back when destroyed uncommitted (an exception left the
// scope). IMMEDIATE takes the write lock up front, waiting out other writers through the busy
// timeout, so a transaction never fails half-way on a lock another process took meanwhile.
class Transaction {
public:
    Transaction(sqlite3* db, const std::string& db_path, std::string where);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

private:
    sqlite3* db_;
    std::string db_path_;
    std::string where_;
    bool open_ = false;
};

// Runs SQL without parameters (pragmas, schema scripts of several statements).
void exec(sqlite3* db, const std::string& db_path, const std::string& where, const char* sql);

// Schema migrations: migration N (1-based) takes a database at version N-1 to version N.
struct Migration {
    int version;
    const char* description;
    const char* sql;
};
const std::vector<Migration>& schema_migrations();  // eval/store_schema.cpp

}  // namespace mlawb::store_detail
