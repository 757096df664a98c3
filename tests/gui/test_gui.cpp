// The GUI shell end to end, offscreen: open the bundled model and the GQA fixture, check what
// the Model panel shows against ModelSummary itself, report a bad folder without a modal
// dialog, keep the recent-models list, and open a folder dropped on the window.
#include "test_support.h"

#include "app/gui/MainWindow.h"
#include "app/gui/ModelLoader.h"
#include "app/gui/panels/ModelPanel.h"
#include "core/model_summary.h"

#include <QApplication>
#include <QDir>
#include <QFile>
#include <QMimeData>
#include <QSettings>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QUrl>

using mlawb::gui::MainWindow;
using mlawb::gui::ModelPanel;

namespace {

constexpr int kLoadTimeoutMs = 20000;

// Records errors instead of showing them: proves the hook is the one way errors reach the user.
class RecordingWindow : public MainWindow {
public:
    QStringList reported;

protected:
    void reportError(const QString& title, const QString& message) override { reported.append(message); }
};

QString bundledModel() { return QString::fromStdString(mlawb::test::source_dir() + "/resources/models/wb-tiny-mha"); }
QString gqaFixture() { return QString::fromStdString(mlawb::test::model_dir("wb-tiny-gqa")); }
QString normalized(const QString& folder) { return QDir::cleanPath(QFileInfo(folder).absoluteFilePath()); }

enum class Outcome { Loaded, Failed, TimedOut };

// Opens `folder` and spins the event loop until the worker's answer arrives.
Outcome openAndWait(MainWindow& window, const QString& folder) {
    QSignalSpy loaded(&window, &MainWindow::modelLoaded);
    QSignalSpy failed(&window, &MainWindow::modelLoadFailed);
    window.openModelFolder(folder);
    QElapsedTimer timer;
    timer.start();
    while (loaded.isEmpty() && failed.isEmpty() && timer.elapsed() < kLoadTimeoutMs) QTest::qWait(5);
    if (!loaded.isEmpty()) return Outcome::Loaded;
    return failed.isEmpty() ? Outcome::TimedOut : Outcome::Failed;
}

QSettings workbenchSettings() { return QSettings(QStringLiteral("MLA Workbench"), QStringLiteral("mla-workbench")); }

// The layer table must show, cell by cell, what ModelSummary computes for the same folder.
void compareLayerTable(const QTableWidget* table, const mlawb::ModelSummary& expected) {
    QCOMPARE(table->rowCount(), static_cast<int>(expected.layers.size()));
    const QLocale english(QLocale::English);
    for (int row = 0; row < table->rowCount(); ++row) {
        const mlawb::LayerSummary& l = expected.layers[static_cast<size_t>(row)];
        const qlonglong columns[] = {l.index, l.attention_params, l.mlp_params, l.q_heads,
                                     l.kv_heads, l.head_dim, l.kv_elements_per_token};
        QCOMPARE(table->columnCount(), 7);
        for (int col = 0; col < 7; ++col) {
            QVERIFY2(table->item(row, col), qPrintable(QStringLiteral("empty cell %1,%2").arg(row).arg(col)));
            QCOMPARE(table->item(row, col)->text(), english.toString(columns[col]));
        }
    }
}

}  // namespace

class GuiTest : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() {
        // Before the first QSettings: the settings path is fixed on first use.
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY2(workbenchSettings().fileName().contains(QStringLiteral(".qttest")),
                 qPrintable(workbenchSettings().fileName()));
        workbenchSettings().remove(QStringLiteral("recentModels"));
    }

    void opensBundledDemoModel() {
        MLAWB_REQUIRE_PATH(bundledModel().toStdString());
        MainWindow window;
        window.setShowDialogs(false);
        window.show();
        QVERIFY(!window.modelPanel()->hasSummary());

        QSignalSpy loaded(&window, &MainWindow::modelLoaded);
        window.openModelFolder(bundledModel());
        // The answer is queued, so the status bar must say "Loading" until the loop runs.
        QVERIFY(window.isLoading());
        QVERIFY2(window.statusBar()->currentMessage().startsWith(QStringLiteral("Loading")),
                 qPrintable(window.statusBar()->currentMessage()));
        QTRY_VERIFY_WITH_TIMEOUT(loaded.count() == 1, kLoadTimeoutMs);
        QVERIFY2(window.lastError().isEmpty(), qPrintable(window.lastError()));
        QCOMPARE(loaded.first().first().toString(), normalized(bundledModel()));
        QVERIFY(window.statusBar()->currentMessage().startsWith(QStringLiteral("Loaded")));
        QVERIFY(window.windowTitle().contains(QStringLiteral("wb-tiny-mha")));

        const ModelPanel* panel = window.modelPanel();
        QVERIFY(panel->hasSummary());
        QCOMPARE(panel->layerTable()->rowCount(), 6);
        QCOMPARE(panel->fieldText(QStringLiteral("q_heads")), QStringLiteral("4"));
        QCOMPARE(panel->fieldText(QStringLiteral("kv_heads")), QStringLiteral("4"));
        QCOMPARE(panel->fieldText(QStringLiteral("head_dim")), QStringLiteral("64"));
        QCOMPARE(panel->fieldText(QStringLiteral("layers")), QStringLiteral("6"));
        QCOMPARE(panel->fieldText(QStringLiteral("hidden")), QStringLiteral("256"));
        QCOMPARE(panel->fieldText(QStringLiteral("vocab")), QStringLiteral("4,096"));
        QCOMPARE(panel->fieldText(QStringLiteral("context")), QStringLiteral("2,048"));
        QCOMPARE(panel->fieldText(QStringLiteral("attention")), QStringLiteral("MHA"));
        QCOMPARE(panel->fieldText(QStringLiteral("tied_embeddings")), QStringLiteral("yes"));
        QCOMPARE(panel->fieldText(QStringLiteral("rope_theta")), QStringLiteral("10,000"));
        QCOMPARE(panel->fieldText(QStringLiteral("rope_scaling")), QStringLiteral("default"));
        QCOMPARE(panel->fieldText(QStringLiteral("weights_dtype")), QStringLiteral("BF16"));
        QVERIFY(panel->fieldText(QStringLiteral("architecture")).contains(QStringLiteral("LlamaForCausalLM")));
        // 6 layers x 2 (K, V) x 4 heads x 64 = 3072 elements; 6144 B in bf16 and in fp16.
        QVERIFY(panel->fieldText(QStringLiteral("kv_elements_per_token")).startsWith(QStringLiteral("3,072")));
        QVERIFY(panel->fieldText(QStringLiteral("kv_bytes_per_token_fp16")).contains(QStringLiteral("6,144 B")));
        QVERIFY(panel->fieldText(QStringLiteral("kv_bytes_per_token_stored")).contains(QStringLiteral("6,144 B")));
        // Every info field is filled in.
        for (const QString& key : panel->fieldKeys())
            QVERIFY2(!panel->fieldText(key).isEmpty(), qPrintable(QStringLiteral("field %1 is empty").arg(key)));

        // q, k, v, o: four 256x256 matrices per layer; K+V of one layer: 2 x 4 x 64.
        QCOMPARE(panel->layerTable()->item(0, 1)->text(), QStringLiteral("262,144"));
        QCOMPARE(panel->layerTable()->item(5, 6)->text(), QStringLiteral("512"));
        compareLayerTable(panel->layerTable(), mlawb::ModelSummary::from_folder(bundledModel().toStdString()));
    }

    void reportsBadFolderThroughTheHook() {
        MLAWB_REQUIRE_PATH(bundledModel().toStdString());
        QTemporaryDir badFolder;
        QVERIFY(badFolder.isValid());
        QFile config(badFolder.filePath(QStringLiteral("config.json")));
        QVERIFY(config.open(QIODevice::WriteOnly));
        config.write(R"({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_layer": 2})");
        config.close();
        QFile tiny(badFolder.filePath(QStringLiteral("model.safetensors")));
        QVERIFY(tiny.open(QIODevice::WriteOnly));
        tiny.write("not a checkpoint");
        tiny.close();

        RecordingWindow window;
        window.show();
        QCOMPARE(openAndWait(window, bundledModel()), Outcome::Loaded);
        QCOMPARE(openAndWait(window, badFolder.path()), Outcome::Failed);

        const QString error = window.lastError();
        QVERIFY2(error.contains(QStringLiteral("model_type")), qPrintable(error));
        QVERIFY2(error.contains(QStringLiteral("gpt2")), qPrintable(error));
        QVERIFY2(error.contains(QStringLiteral("config.json")), qPrintable(error));
        QCOMPARE(window.reported, QStringList{error});
        QVERIFY(window.statusBar()->currentMessage().startsWith(QStringLiteral("Could not open")));
        // The model the user had stays on show, and the bad folder is not remembered.
        QCOMPARE(window.currentModelFolder(), normalized(bundledModel()));
        QCOMPARE(window.modelPanel()->layerTable()->rowCount(), 6);
        QVERIFY(!window.recentModels().contains(normalized(badFolder.path())));
        QCOMPARE(window.recentModels().value(0), normalized(bundledModel()));

        // A folder that does not exist fails the same way, naming the path.
        const QString missing = badFolder.filePath(QStringLiteral("no-such-model"));
        QCOMPARE(openAndWait(window, missing), Outcome::Failed);
        QVERIFY2(window.lastError().contains(QStringLiteral("no-such-model")), qPrintable(window.lastError()));
        QCOMPARE(window.reported.size(), 2);
    }

    void opensGqaFixture() {
        MLAWB_REQUIRE_PATH(mlawb::test::model_dir("wb-tiny-gqa"));
        MainWindow window;
        window.setShowDialogs(false);
        window.show();
        QCOMPARE(openAndWait(window, gqaFixture()), Outcome::Loaded);
        const ModelPanel* panel = window.modelPanel();
        QCOMPARE(panel->fieldText(QStringLiteral("q_heads")), QStringLiteral("4"));
        QCOMPARE(panel->fieldText(QStringLiteral("kv_heads")), QStringLiteral("2"));
        QCOMPARE(panel->fieldText(QStringLiteral("tied_embeddings")), QStringLiteral("no"));
        QVERIFY(panel->fieldText(QStringLiteral("attention")).startsWith(QStringLiteral("GQA")));
        QCOMPARE(panel->layerTable()->rowCount(), 6);
        for (int row = 0; row < 6; ++row) QCOMPARE(panel->layerTable()->item(row, 4)->text(), QStringLiteral("2"));
        // q and o are 256x256, k and v 256x128 (2 KV heads x 64).
        QCOMPARE(panel->layerTable()->item(0, 1)->text(), QStringLiteral("196,608"));
        compareLayerTable(panel->layerTable(), mlawb::ModelSummary::from_folder(gqaFixture().toStdString()));
    }

    void recentModelsMostRecentFirst() {
        MLAWB_REQUIRE_PATH(bundledModel().toStdString());
        MLAWB_REQUIRE_PATH(gqaFixture().toStdString());
        MainWindow window;
        window.setShowDialogs(false);
        window.clearRecentModels();
        QCOMPARE(openAndWait(window, bundledModel()), Outcome::Loaded);
        QCOMPARE(window.recentModels(), QStringList{normalized(bundledModel())});
        QCOMPARE(openAndWait(window, gqaFixture()), Outcome::Loaded);
        QCOMPARE(window.recentModels(), (QStringList{normalized(gqaFixture()), normalized(bundledModel())}));

        // Re-opening the good model moves it to the top without a duplicate; the list is in
        // QSettings, so a new window (the next start of the program) sees the same order.
        QCOMPARE(openAndWait(window, bundledModel()), Outcome::Loaded);
        MainWindow nextStart;
        QCOMPARE(nextStart.recentModels(), (QStringList{normalized(bundledModel()), normalized(gqaFixture())}));
    }

    void recentModelsPrunedAndCapped() {
        QTemporaryDir root;
        QVERIFY(root.isValid());
        QStringList stored{root.filePath(QStringLiteral("deleted-model"))};  // never created
        for (int i = 0; i < 10; ++i) {
            const QString folder = root.filePath(QStringLiteral("model-%1").arg(i));
            QVERIFY(QDir().mkpath(folder));
            stored.append(folder);
        }
        workbenchSettings().setValue(QStringLiteral("recentModels"), stored);

        MainWindow window;
        window.setShowDialogs(false);
        const QStringList recent = window.recentModels();
        QCOMPARE(recent.size(), MainWindow::kMaxRecentModels);
        QVERIFY(!recent.contains(stored.first()));
        QCOMPARE(recent.first(), stored.at(1));

        QCOMPARE(openAndWait(window, bundledModel()), Outcome::Loaded);
        QCOMPARE(window.recentModels().size(), MainWindow::kMaxRecentModels);
        QCOMPARE(window.recentModels().first(), normalized(bundledModel()));

        window.clearRecentModels();
        QVERIFY(window.recentModels().isEmpty());
    }

    void droppedFolderIsOpened() {
        MLAWB_REQUIRE_PATH(mlawb::test::model_dir("wb-tiny-gqa"));
        MainWindow window;
        window.setShowDialogs(false);
        window.show();

        // A file (not a folder) is refused at drag-enter.
        QMimeData fileMime;
        fileMime.setUrls({QUrl::fromLocalFile(gqaFixture() + QStringLiteral("/config.json"))});
        QDragEnterEvent refused(QPoint(20, 20), Qt::CopyAction, &fileMime, Qt::LeftButton, Qt::NoModifier);
        QApplication::sendEvent(&window, &refused);
        QVERIFY(!refused.isAccepted());

        QMimeData folderMime;
        folderMime.setUrls({QUrl::fromLocalFile(gqaFixture())});
        QDragEnterEvent enter(QPoint(20, 20), Qt::CopyAction, &folderMime, Qt::LeftButton, Qt::NoModifier);
        QApplication::sendEvent(&window, &enter);
        QVERIFY(enter.isAccepted());

        QSignalSpy loaded(&window, &MainWindow::modelLoaded);
        QDropEvent drop(QPointF(20, 20), Qt::CopyAction, &folderMime, Qt::LeftButton, Qt::NoModifier);
        QApplication::sendEvent(&window, &drop);
        QTRY_VERIFY_WITH_TIMEOUT(loaded.count() == 1, kLoadTimeoutMs);
        QCOMPARE(window.currentModelFolder(), normalized(gqaFixture()));
        QCOMPARE(window.modelPanel()->fieldText(QStringLiteral("kv_heads")), QStringLiteral("2"));
    }

    void loaderReportsOnlyTheLatestRequest() {
        // Two overlapping loads: the older one's answer must not replace the newer one's.
        mlawb::gui::ModelLoader loader;
        QSignalSpy loaded(&loader, &mlawb::gui::ModelLoader::loaded);
        QSignalSpy failed(&loader, &mlawb::gui::ModelLoader::failed);
        loader.load(bundledModel());
        loader.load(gqaFixture());
        QTRY_VERIFY_WITH_TIMEOUT(!loader.isLoading(), kLoadTimeoutMs);
        QCOMPARE(failed.count(), 0);
        QCOMPARE(loaded.count(), 1);
        QCOMPARE(loaded.first().at(0).toString(), gqaFixture());
        QCOMPARE(loaded.first().at(1).value<mlawb::ModelSummary>().config.n_kv_head, int64_t{2});
    }
};

QTEST_MAIN(GuiTest)
#include "test_gui.moc"
