// safetensors reader, writer and checkpoint folders: every refusal names the file and the
// field or tensor at fault; bad files are built byte by byte so each defect stands alone.
#include "core/error.h"
#include "core/safetensors.h"
#include "test_support.h"

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <cstring>

using mlawb::Checkpoint;
using mlawb::DType;
using mlawb::SafetensorsFile;
using mlawb::TensorToWrite;
using mlawb::TensorView;

namespace {

// The 8-byte little-endian length prefix the format starts with.
QByteArray length_prefix(quint64 header_bytes) {
    QByteArray out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header_bytes >> (8 * i)) & 0xff);
    return out;
}

// A whole file: prefix, `header` verbatim, then `data_bytes` bytes whose value is their
// offset in the data area (mod 256), so tests can tell which bytes a view points at.
QByteArray safetensors_bytes(const QByteArray& header, int data_bytes) {
    QByteArray out = length_prefix(static_cast<quint64>(header.size())) + header;
    for (int i = 0; i < data_bytes; ++i) out.append(static_cast<char>(i & 0xff));
    return out;
}

bool write_bytes(const QString& path, const QByteArray& bytes) {
    QFile file(path);
    return file.open(QIODevice::WriteOnly | QIODevice::Truncate) && file.write(bytes) == bytes.size();
}

std::string in_dir(const QTemporaryDir& dir, const char* name) { return dir.filePath(name).toStdString(); }

// Whether this process maps `path` now (Linux /proc/self/maps), to see mappings released.
bool is_mapped(const std::string& path) {
    QFile maps("/proc/self/maps");
    if (!maps.open(QIODevice::ReadOnly | QIODevice::Text)) return false;
    return maps.readAll().contains(QByteArray::fromStdString(path));
}

}  // namespace

class TestSafetensors : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void refuses_bad_length_prefix_data() {
        QTest::addColumn<QByteArray>("bytes");
        QTest::addColumn<QByteArray>("needle1");
        QTest::addColumn<QByteArray>("needle2");
        QTest::newRow("empty file") << QByteArray() << QByteArray("truncated") << QByteArray("0 bytes");
        QTest::newRow("file of 5 bytes") << QByteArray("abcde") << QByteArray("truncated") << QByteArray("5 bytes");
        QTest::newRow("header length past EOF")
            << length_prefix(1000) + "{}" << QByteArray("header: header length 1000") << QByteArray("past the end");
        QTest::newRow("header over 100 MB claimed")
            << length_prefix(200'000'000) + "{}" << QByteArray("header: header length 200000000")
            << QByteArray("100 MB");
        QTest::newRow("header length 2^64-1")
            << length_prefix(~quint64(0)) + "{}" << QByteArray("18446744073709551615") << QByteArray("100 MB");
    }
    void refuses_bad_length_prefix() {
        QFETCH(QByteArray, bytes);
        QFETCH(QByteArray, needle1);
        QFETCH(QByteArray, needle2);
        QTemporaryDir dir;
        const std::string path = in_dir(dir, "bad.safetensors");
        QVERIFY(write_bytes(QString::fromStdString(path), bytes));
        MLAWB_EXPECT_ERROR(SafetensorsFile::open(path), path.c_str(), needle1.constData(), needle2.constData());
    }

    void refuses_bad_header_data() {
        QTest::addColumn<QByteArray>("header");
        QTest::addColumn<int>("data_bytes");
        QTest::addColumn<QByteArray>("needle1");
        QTest::addColumn<QByteArray>("needle2");
        auto row = [](const char* name, const char* header, int data_bytes, const char* needle1, const char* needle2) {
            QTest::newRow(name) << QByteArray(header) << data_bytes << QByteArray(needle1) << QByteArray(needle2);
        };
        row("not JSON", R"({"w": {"dtype": )", 0, "header: not valid JSON", "parse");
        row("JSON array", R"([1, 2, 3])", 0, "header: header is a JSON array", "expected an object");
        row("JSON string", R"("hello")", 0, "header: header is a JSON string", "expected an object");
        row("entry not an object", R"({"w.weight": [0, 4]})", 4, "w.weight: tensor entry is a JSON array", "object");
        row("missing dtype", R"({"w.weight": {"shape": [1], "data_offsets": [0, 4]}})", 4, "w.weight",
            "lacks \"dtype\"");
        row("missing shape", R"({"w.weight": {"dtype": "F32", "data_offsets": [0, 4]}})", 4, "w.weight",
            "lacks \"shape\"");
        row("missing data_offsets", R"({"w.weight": {"dtype": "F32", "shape": [1]}})", 4, "w.weight",
            "lacks \"data_offsets\"");
        row("dtype a number", R"({"w.weight": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}})", 4,
            "w.weight: \"dtype\" is a JSON number", "string");
        row("dtype I64", R"({"w.weight": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}})", 8,
            "w.weight: unsupported dtype \"I64\"", "F32, F16, BF16");
        row("dtype F8_E4M3", R"({"w.weight": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4,
            "unsupported dtype \"F8_E4M3\" of tensor \"w.weight\"", "BF16");
        row("shape an object", R"({"w.weight": {"dtype": "F32", "shape": {}, "data_offsets": [0, 4]}})", 4,
            "w.weight: \"shape\" is a JSON object", "array");
        row("shape holds a float", R"({"w.weight": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4,
            "w.weight: \"shape\" holds 1.5", "integer");
        row("negative dimension", R"({"w.weight": {"dtype": "F32", "shape": [2, -3], "data_offsets": [0, 4]}})", 4,
            "w.weight: negative dimension -3", "shape");
        row("shape product overflows",
            R"({"w.weight": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 4]}})",
            4, "w.weight: shape [4294967296, 4294967296, 4294967296]", "overflows");
        row("shape x dtype size overflows",
            R"({"w.weight": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 4]}})", 4,
            "w.weight", "overflows");
        row("data_offsets one number", R"({"w.weight": {"dtype": "F32", "shape": [1], "data_offsets": [4]}})", 4,
            "w.weight: \"data_offsets\" is [4]", "[begin, end]");
        row("data_offsets negative", R"({"w.weight": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4,
            "w.weight: \"data_offsets\"", "non-negative integers");
        row("data_offsets strings", R"({"w.weight": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}})", 4,
            "w.weight: \"data_offsets\"", "non-negative integers");
        row("begin past end", R"({"w.weight": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 8,
            "w.weight: \"data_offsets\" begin 8", "past end 4");
        row("size mismatch", R"({"w.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 24,
            "w.weight: \"data_offsets\" span 20 bytes", "[2, 3] x F32 needs 24 bytes");
        row("offsets outside data area", R"({"w.weight": {"dtype": "BF16", "shape": [8], "data_offsets": [0, 16]}})",
            12, "w.weight: \"data_offsets\" [0, 16] fall outside the data area", "12 bytes");
        row("overlapping offsets",
            R"({"first.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
            R"( "second.weight": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
            12, "tensor \"second.weight\" overlaps tensor \"first.weight\"", "byte range");
        row("range nested inside another",
            R"({"outer": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
            R"( "inner": {"dtype": "F16", "shape": [2], "data_offsets": [4, 8]},)"
            R"( "later": {"dtype": "F16", "shape": [2], "data_offsets": [8, 12]}})",
            16, "tensor \"inner\" overlaps tensor \"outer\"", "inner: ");
        row("metadata value a number", R"({"__metadata__": {"format": "pt", "epochs": 3}})", 0,
            "__metadata__: value of \"epochs\" is a JSON number", "expected a string");
        row("metadata an array", R"({"__metadata__": ["pt"]})", 0, "__metadata__: is a JSON array", "object");
    }
    void refuses_bad_header() {
        QFETCH(QByteArray, header);
        QFETCH(int, data_bytes);
        QFETCH(QByteArray, needle1);
        QFETCH(QByteArray, needle2);
        QTemporaryDir dir;
        const std::string path = in_dir(dir, "bad.safetensors");
        QVERIFY(write_bytes(QString::fromStdString(path), safetensors_bytes(header, data_bytes)));
        MLAWB_EXPECT_ERROR(SafetensorsFile::open(path), path.c_str(), needle1.constData(), needle2.constData());
        QVERIFY2(!is_mapped(path), "a refused file must not stay mapped");
    }

    // A good file cut short at several places; `keep` < 0 counts back from the end.
    void refuses_truncated_file_data() {
        QTest::addColumn<qint64>("keep");
        QTest::addColumn<QByteArray>("needle1");
        QTest::addColumn<QByteArray>("needle2");
        QTest::newRow("cut inside data area") << qint64(-10) << QByteArray("t.weight: \"data_offsets\" [0, 64]")
                                              << QByteArray("outside the data area (54 bytes");
        QTest::newRow("cut inside header") << qint64(11) << QByteArray("header: header length")
                                           << QByteArray("past the end of the file (3 bytes");
        QTest::newRow("cut inside length prefix") << qint64(5) << QByteArray("header") << QByteArray("truncated");
    }
    void refuses_truncated_file() {
        QFETCH(qint64, keep);
        QFETCH(QByteArray, needle1);
        QFETCH(QByteArray, needle2);
        QTemporaryDir dir;
        const std::string path = in_dir(dir, "cut.safetensors");
        std::vector<float> values(16, 1.5f);
        mlawb::write_safetensors(path, {{"t.weight", DType::F32, {4, 4}, values.data()}});
        QFile file(QString::fromStdString(path));
        QVERIFY(file.resize(keep < 0 ? file.size() + keep : keep));
        MLAWB_EXPECT_ERROR(SafetensorsFile::open(path), path.c_str(), needle1.constData(), needle2.constData());
    }

    void accepts_metadata() {
        QTemporaryDir dir;
        const std::string path = in_dir(dir, "meta.safetensors");
        const QByteArray header = R"({"__metadata__": {"format": "pt", "note": "hello"},)"
                                  R"( "w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})";
        QVERIFY(write_bytes(QString::fromStdString(path), safetensors_bytes(header, 4)));
        const auto file = SafetensorsFile::open(path);
        const std::map<std::string, std::string> expected{{"format", "pt"}, {"note", "hello"}};
        QCOMPARE(file->metadata(), expected);
        QCOMPARE(file->tensors().size(), size_t(1));
        QVERIFY(file->find("__metadata__") == nullptr);
        QCOMPARE(file->find("w")->dtype, DType::F16);
        QCOMPARE(file->file_size(), size_t(8 + header.size() + 4));
    }

    void accepts_zero_size_tensor() {
        QTemporaryDir dir;
        const std::string path = in_dir(dir, "zero.safetensors");
        // Empty ranges at the end and inside another tensor's bytes overlap nothing.
        const QByteArray header = R"({"empty": {"dtype": "F16", "shape": [0, 4], "data_offsets": [8, 8]},)"
                                  R"( "inner_empty": {"dtype": "BF16", "shape": [3, 0], "data_offsets": [4, 4]},)"
                                  R"( "full": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})";
        QVERIFY(write_bytes(QString::fromStdString(path), safetensors_bytes(header, 8)));
        const auto file = SafetensorsFile::open(path);
        QCOMPARE(file->tensors().size(), size_t(3));
        const TensorView* empty = file->find("empty");
        QVERIFY(empty != nullptr);
        QCOMPARE(empty->numel(), int64_t(0));
        QCOMPARE(empty->nbytes, size_t(0));
        QCOMPARE(empty->shape, (std::vector<int64_t>{0, 4}));
        QCOMPARE(file->find("inner_empty")->numel(), int64_t(0));
        QCOMPARE(file->find("full")->numel(), int64_t(2));
        QCOMPARE(file->find("full")->nbytes, size_t(8));
    }

    void views_point_into_data_area_in_file_order() {
        QTemporaryDir dir;
        const std::string path = in_dir(dir, "order.safetensors");
        const QByteArray header = R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},)"
                                  R"( "b": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}})";
        QVERIFY(write_bytes(QString::fromStdString(path), safetensors_bytes(header, 8)));
        auto file = SafetensorsFile::open(path);
        QVERIFY(is_mapped(path));  // viewed in place, not read into a buffer
        QCOMPARE(file->tensors()[0].name, std::string("b"));  // first in the data area
        QCOMPARE(file->tensors()[1].name, std::string("a"));
        QCOMPARE(file->find("b")->numel(), int64_t(1));       // a scalar: shape []
        QCOMPARE(int(file->find("a")->data[0]), 4);            // data byte i holds i
        QCOMPARE(int(file->find("b")->data[3]), 3);
        QCOMPARE(file->find("a")->file, path);
        file.reset();
        QVERIFY(!is_mapped(path));
    }

    void writer_round_trip() {
        QTemporaryDir dir;
        const std::string path = in_dir(dir, "round.safetensors");
        const std::vector<float> f32 = {1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, 7.0f};
        const std::vector<uint16_t> bf16 = {0x3f80, 0xc020, 0x0000, 0x7f80};  // 1, -2.5, 0, +inf
        const std::vector<uint16_t> f16 = {0x3c00, 0xc100, 0x3555, 0x7bff};   // 1, -2.5, ~1/3, max
        const float scalar = 42.0f;
        const std::vector<TensorToWrite> tensors = {
            {"layer.f32", DType::F32, {2, 3}, f32.data()},
            {"layer.bf16", DType::BF16, {4}, bf16.data()},
            {"layer.empty", DType::F16, {0, 5}, nullptr},  // null data is fine with no elements
            {"layer.f16", DType::F16, {2, 2}, f16.data()},
            {"scalar", DType::F32, {}, &scalar},
        };
        const std::map<std::string, std::string> metadata{{"format", "pt"}, {"source", "test"}};
        mlawb::write_safetensors(path, tensors, metadata);
        QVERIFY(!QFile::exists(QString::fromStdString(path + ".tmp")));

        QFile raw(QString::fromStdString(path));
        QVERIFY(raw.open(QIODevice::ReadOnly));
        const QByteArray bytes = raw.readAll();
        quint64 header_bytes = 0;
        for (int i = 0; i < 8; ++i) header_bytes |= quint64(uchar(bytes[i])) << (8 * i);
        QCOMPARE((8 + header_bytes) % 8, quint64(0));
        QVERIFY(bytes.mid(8, int(header_bytes)).startsWith("{\"__metadata__\""));
        const size_t data_bytes = 24 + 8 + 0 + 8 + 4;
        QCOMPARE(size_t(bytes.size()), size_t(8 + header_bytes + data_bytes));

        const auto file = SafetensorsFile::open(path);
        QCOMPARE(file->metadata(), metadata);
        QCOMPARE(file->tensors().size(), tensors.size());
        const uint8_t* expected_data = file->tensors().front().data;
        for (size_t i = 0; i < tensors.size(); ++i) {
            const TensorView& view = file->tensors()[i];  // written order, contiguous
            QCOMPARE(view.name, tensors[i].name);
            QCOMPARE(view.dtype, tensors[i].dtype);
            QCOMPARE(view.shape, tensors[i].shape);
            QCOMPARE(view.nbytes, size_t(view.numel()) * mlawb::dtype_size(view.dtype));
            QVERIFY(view.data == expected_data);
            if (view.nbytes > 0) QCOMPARE(std::memcmp(view.data, tensors[i].data, view.nbytes), 0);
            expected_data += view.nbytes;
        }
        // Page-aligned mapping + (8 + N) % 8 == 0: the data area starts 8-byte aligned.
        QCOMPARE(reinterpret_cast<uintptr_t>(file->tensors().front().data) % 8, uintptr_t(0));
        QCOMPARE(file->find("scalar")->numel(), int64_t(1));

        // Writing again over an existing file replaces it whole.
        mlawb::write_safetensors(path, {{"only", DType::BF16, {1}, bf16.data()}});
        QCOMPARE(SafetensorsFile::open(path)->tensors().size(), size_t(1));
    }

    void writer_refuses_bad_input_data() {
        QTest::addColumn<int>("defect");
        QTest::addColumn<QByteArray>("needle");
        QTest::newRow("null data with elements") << 0 << QByteArray("w: data is null");
        QTest::newRow("negative dimension") << 1 << QByteArray("w: negative dimension -2");
        QTest::newRow("name written twice") << 2 << QByteArray("w: tensor name written twice");
        QTest::newRow("reserved name") << 3 << QByteArray("__metadata__: invalid tensor name");
    }
    void writer_refuses_bad_input() {
        QFETCH(int, defect);
        QFETCH(QByteArray, needle);
        QTemporaryDir dir;
        const std::string path = in_dir(dir, "bad.safetensors");
        const float values[4] = {1, 2, 3, 4};
        std::vector<TensorToWrite> tensors;
        if (defect == 0) tensors = {{"w", DType::F32, {4}, nullptr}};
        if (defect == 1) tensors = {{"w", DType::F32, {-2, 2}, values}};
        if (defect == 2) tensors = {{"w", DType::F32, {2}, values}, {"w", DType::F32, {2}, values}};
        if (defect == 3) tensors = {{"__metadata__", DType::F32, {4}, values}};
        MLAWB_EXPECT_ERROR(mlawb::write_safetensors(path, tensors), path.c_str(), needle.constData());
        QVERIFY(!QFile::exists(QString::fromStdString(path)));
    }

    void writer_reports_unwritable_path() {
        QTemporaryDir dir;
        const std::string path = in_dir(dir, "no_such_folder/out.safetensors");
        const float value = 1.0f;
        MLAWB_EXPECT_ERROR(mlawb::write_safetensors(path, {{"w", DType::F32, {1}, &value}}), path.c_str(),
                           "cannot open", "No such file");
    }

    void opens_sharded_checkpoint() {
        QTemporaryDir dir;
        const std::vector<float> a = {1, 2};
        const std::vector<uint16_t> b = {0x3f80, 0x4000, 0x4040};
        const std::vector<uint16_t> c = {1, 2, 3, 4};
        mlawb::write_safetensors(in_dir(dir, "model-00001-of-00002.safetensors"),
                                 {{"a", DType::F32, {2}, a.data()}, {"b", DType::BF16, {3}, b.data()}});
        mlawb::write_safetensors(in_dir(dir, "model-00002-of-00002.safetensors"),
                                 {{"c", DType::F16, {2, 2}, c.data()}});
        QVERIFY(write_bytes(dir.filePath("model.safetensors.index.json"),
                            R"({"metadata": {"total_size": 22}, "weight_map": {)"
                            R"("a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",)"
                            R"("c": "model-00002-of-00002.safetensors"}})"));
        Checkpoint opened = Checkpoint::open_folder(dir.path().toStdString());
        QCOMPARE(opened.file_count(), size_t(2));
        QCOMPARE(opened.names(), (std::vector<std::string>{"a", "b", "c"}));
        QCOMPARE(opened.total_bytes(), size_t(8 + 6 + 8));
        const TensorView* c_before_move = &opened.get("c");

        Checkpoint checkpoint = std::move(opened);  // views live in the mapped files, not the object
        QCOMPARE(&checkpoint.get("c"), c_before_move);
        QCOMPARE(checkpoint.folder(), dir.path().toStdString());
        QCOMPARE(checkpoint.get("a").dtype, DType::F32);
        QCOMPARE(std::memcmp(checkpoint.get("a").data, a.data(), 8), 0);
        QCOMPARE(checkpoint.get("b").dtype, DType::BF16);
        QCOMPARE(std::memcmp(checkpoint.get("b").data, b.data(), 6), 0);
        QCOMPARE(checkpoint.get("c").shape, (std::vector<int64_t>{2, 2}));
        QCOMPARE(std::memcmp(checkpoint.get("c").data, c.data(), 8), 0);
        QVERIFY(checkpoint.get("c").file.find("model-00002-of-00002.safetensors") != std::string::npos);
    }

    void refuses_index_naming_missing_tensor() {
        QTemporaryDir dir;
        const float value = 1.0f;
        mlawb::write_safetensors(in_dir(dir, "shard-a.safetensors"), {{"present", DType::F32, {1}, &value}});
        QVERIFY(write_bytes(dir.filePath("model.safetensors.index.json"),
                            R"({"weight_map": {"present": "shard-a.safetensors", "absent": "shard-a.safetensors"}})"));
        const std::string index = in_dir(dir, "model.safetensors.index.json");
        MLAWB_EXPECT_ERROR(Checkpoint::open_folder(dir.path().toStdString()), index.c_str(), "absent",
                           "missing from shard \"shard-a.safetensors\"");
    }

    void refuses_bad_index_data() {
        QTest::addColumn<QByteArray>("index");
        QTest::addColumn<QByteArray>("needle");
        QTest::newRow("not JSON") << QByteArray("{weight_map") << QByteArray("not valid JSON");
        QTest::newRow("no weight_map") << QByteArray(R"({"metadata": {}})") << QByteArray("weight_map");
        QTest::newRow("shard a number") << QByteArray(R"({"weight_map": {"w": 3}})")
                                        << QByteArray("w: shard is a JSON number");
        QTest::newRow("shard outside folder") << QByteArray(R"({"weight_map": {"w": "../x.safetensors"}})")
                                              << QByteArray("not a file name in the folder");
        QTest::newRow("shard missing") << QByteArray(R"({"weight_map": {"w": "gone.safetensors"}})")
                                       << QByteArray("w: shard \"gone.safetensors\" does not exist");
    }
    void refuses_bad_index() {
        QFETCH(QByteArray, index);
        QFETCH(QByteArray, needle);
        QTemporaryDir dir;
        QVERIFY(write_bytes(dir.filePath("model.safetensors.index.json"), index));
        const std::string index_path = in_dir(dir, "model.safetensors.index.json");
        MLAWB_EXPECT_ERROR(Checkpoint::open_folder(dir.path().toStdString()), index_path.c_str(), needle.constData());
    }

    void refuses_duplicate_tensor_across_shards() {
        QTemporaryDir dir;
        const float value = 1.0f;
        mlawb::write_safetensors(in_dir(dir, "one.safetensors"), {{"shared.weight", DType::F32, {1}, &value}});
        mlawb::write_safetensors(in_dir(dir, "two.safetensors"), {{"shared.weight", DType::F32, {1}, &value},
                                                                  {"other", DType::F32, {1}, &value}});
        QVERIFY(write_bytes(dir.filePath("model.safetensors.index.json"),
                            R"({"weight_map": {"shared.weight": "one.safetensors", "other": "two.safetensors"}})"));
        MLAWB_EXPECT_ERROR(Checkpoint::open_folder(dir.path().toStdString()), "shared.weight", "appears in both",
                           "one.safetensors", "two.safetensors");
    }

    void refuses_pickle_only_folder_data() {
        QTest::addColumn<QStringList>("files");
        QTest::addColumn<QByteArray>("needle");
        QTest::newRow("pytorch_model.bin") << QStringList{"pytorch_model.bin", "config.json"}
                                           << QByteArray("pytorch_model.bin");
        QTest::newRow("sharded .bin") << QStringList{"pytorch_model-00001-of-00002.bin"}
                                      << QByteArray("pytorch_model-00001-of-00002.bin");
        QTest::newRow(".pt") << QStringList{"model.pt"} << QByteArray("model.pt");
        QTest::newRow(".pth") << QStringList{"weights.pth"} << QByteArray("weights.pth");
    }
    void refuses_pickle_only_folder() {
        QFETCH(QStringList, files);
        QFETCH(QByteArray, needle);
        QTemporaryDir dir;
        for (const QString& name : files) QVERIFY(write_bytes(dir.filePath(name), QByteArray()));
        MLAWB_EXPECT_ERROR(Checkpoint::open_folder(dir.path().toStdString()), needle.constData(), "pickle",
                           "never loaded", "unsafe", "convert it to safetensors", "safe_serialization=True");
    }

    void refuses_folder_without_checkpoint() {
        QTemporaryDir dir;
        QVERIFY(write_bytes(dir.filePath("config.json"), "{}"));
        MLAWB_EXPECT_ERROR(Checkpoint::open_folder(dir.path().toStdString()), "no model.safetensors", "config.json");
        const float value = 1.0f;
        mlawb::write_safetensors(in_dir(dir, "model-00001-of-00002.safetensors"), {{"w", DType::F32, {1}, &value}});
        QVERIFY(write_bytes(dir.filePath("pytorch_model.bin"), QByteArray()));  // safetensors win over pickle
        MLAWB_EXPECT_ERROR(Checkpoint::open_folder(dir.path().toStdString()), "model-00001-of-00002.safetensors",
                           "model.safetensors.index.json");
    }

    void refuses_missing_folder() {
        QTemporaryDir dir;
        const std::string missing = in_dir(dir, "no_such_model");
        MLAWB_EXPECT_ERROR(Checkpoint::open_folder(missing), missing.c_str(), "does not exist");
        const std::string plain_file = in_dir(dir, "model.safetensors");
        const float value = 1.0f;
        mlawb::write_safetensors(plain_file, {{"w", DType::F32, {1}, &value}});
        MLAWB_EXPECT_ERROR(Checkpoint::open_folder(plain_file), plain_file.c_str(), "not a folder");
    }

    void get_reports_missing_tensor() {
        QTemporaryDir dir;
        const float value = 1.0f;
        mlawb::write_safetensors(in_dir(dir, "model.safetensors"), {{"w", DType::F32, {1}, &value}});
        const Checkpoint checkpoint = Checkpoint::open_folder(dir.path().toStdString());
        QCOMPARE(checkpoint.file_count(), size_t(1));
        QVERIFY(checkpoint.find("lm_head.weight") == nullptr);
        const std::string folder = dir.path().toStdString();
        MLAWB_EXPECT_ERROR(checkpoint.get("lm_head.weight"), folder.c_str(),
                           "lm_head.weight: missing tensor \"lm_head.weight\"");
    }

    void opens_real_fixture() {
        const std::string folder = mlawb::test::model_dir("wb-tiny-mha");
        const std::string path = folder + "/model.safetensors";
        MLAWB_REQUIRE_PATH(path);
        const auto file = SafetensorsFile::open(path);
        const TensorView* embed = file->find("model.embed_tokens.weight");
        QVERIFY(embed != nullptr);
        QCOMPARE(embed->dtype, DType::BF16);
        QCOMPARE(embed->shape, (std::vector<int64_t>{4096, 256}));
        QCOMPARE(embed->nbytes, size_t(4096) * 256 * 2);
        QCOMPARE(file->metadata().at("format"), std::string("pt"));

        const Checkpoint checkpoint = Checkpoint::open_folder(folder);
        QCOMPARE(checkpoint.names().size(), file->tensors().size());
        QCOMPARE(checkpoint.get("model.embed_tokens.weight").shape, embed->shape);
        QVERIFY(checkpoint.total_bytes() <= file->file_size());
    }
};

QTEST_APPLESS_MAIN(TestSafetensors)
#include "test_safetensors.moc"
