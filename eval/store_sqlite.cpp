#include "eval/store_sqlite.h"

namespace mlawb::store_detail {

void throw_sqlite(sqlite3* db, int code, const std::string& db_path, const std::string& where) {
    const std::string sqlite_message = db ? sqlite3_errmsg(db) : sqlite3_errstr(code);
    switch (code & 0xff) {
    case SQLITE_NOTADB:
        throw Error(db_path, where, "not an SQLite database (" + sqlite_message + ")");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        throw Error(db_path, where,
                    "database busy (" + sqlite_message + "); another process may have held it past the 10 s busy timeout");
    case SQLITE_CANTOPEN:
        throw Error(db_path, where, "cannot open database file (" + sqlite_message + ")");
    case SQLITE_CORRUPT:
        throw Error(db_path, where, "database file is damaged (" + sqlite_message + "); check it with PRAGMA integrity_check");
    default:
        throw Error(db_path, where, sqlite_message);
    }
}

Statement::Statement(sqlite3* db, const std::string& db_path, std::string where, const char* sql)
    : db_(db), db_path_(db_path), where_(std::move(where)) {
    const int code = sqlite3_prepare_v2(db_, sql, -1, &stmt_, nullptr);
    if (code != SQLITE_OK) throw_sqlite(db_, code, db_path_, where_);
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

void Statement::check_bind(int code) {
    if (code != SQLITE_OK) throw_sqlite(db_, code, db_path_, where_);
}

Statement& Statement::bind(int index, int64_t value) {
    check_bind(sqlite3_bind_int64(stmt_, index, value));
    return *this;
}

Statement& Statement::bind(int index, double value) {
    check_bind(sqlite3_bind_double(stmt_, index, value));
    return *this;
}

Statement& Statement::bind(int index, const std::string& value) {
    // SQLITE_TRANSIENT: SQLite copies the bytes, so temporaries are safe to pass.
    check_bind(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT));
    return *this;
}

Statement& Statement::bind(int index, const std::optional<int64_t>& value) {
    return value ? bind(index, *value) : bind_null(index);
}

Statement& Statement::bind_null(int index) {
    check_bind(sqlite3_bind_null(stmt_, index));
    return *this;
}

bool Statement::step() {
    const int code = sqlite3_step(stmt_);
    if (code == SQLITE_ROW) return true;
    if (code == SQLITE_DONE) return false;
    throw_sqlite(db_, code, db_path_, where_);
}

void Statement::run() {
    while (step()) {
    }
}

void Statement::reset() {
    sqlite3_reset(stmt_);  // returns the last step's error, which step() has already thrown
    sqlite3_clear_bindings(stmt_);
}

bool Statement::is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
int64_t Statement::integer(int column) const { return sqlite3_column_int64(stmt_, column); }
double Statement::real(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Statement::text(int column) const {
    const unsigned char* bytes = sqlite3_column_text(stmt_, column);
    if (!bytes) return "";
    return std::string(reinterpret_cast<const char*>(bytes), static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::optional<int64_t> Statement::optional_integer(int column) const {
    if (is_null(column)) return std::nullopt;
    return integer(column);
}

Transaction::Transaction(sqlite3* db, const std::string& db_path, std::string where)
    : db_(db), db_path_(db_path), where_(std::move(where)) {
    exec(db_, db_path_, where_, "BEGIN IMMEDIATE");
    open_ = true;
}

Transaction::~Transaction() {
    // Rollback cannot usefully fail here: if it does, SQLite has already rolled back.
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
    exec(db_, db_path_, where_, "COMMIT");
    open_ = false;
}

void exec(sqlite3* db, const std::string& db_path, const std::string& where, const char* sql) {
    char* message = nullptr;
    const int code = sqlite3_exec(db, sql, nullptr, nullptr, &message);
    if (code == SQLITE_OK) return;
    sqlite3_free(message);  // the same text is still available from sqlite3_errmsg
    throw_sqlite(db, code, db_path, where);
}

}  // namespace mlawb::store_detail
