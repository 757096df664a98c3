#include "app/gui/MainWindow.h"

#include "app/gui/ModelLoader.h"
#include "app/gui/panels/EvalPanel.h"
#include "app/gui/panels/ModelPanel.h"
#include "app/gui/panels/ParetoPanel.h"
#include "app/gui/panels/ResultsPanel.h"
#include "app/gui/panels/RopeHeatmapPanel.h"
#include "app/gui/panels/SettingsPanel.h"
#include "app/gui/panels/SpectrumPanel.h"

#include <QAction>
#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QKeySequence>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QSettings>
#include <QStatusBar>
#include <QTabWidget>
#include <QUrl>

#include <type_traits>

namespace mlawb::gui {

namespace {

const QString kRecentModelsKey = QStringLiteral("recentModels");
const QString kLastModelKey = QStringLiteral("lastModel");
const QString kGeometryKey = QStringLiteral("window/geometry");
const QString kWindowStateKey = QStringLiteral("window/state");
const QString kTabKey = QStringLiteral("window/tab");
const QString kDatabaseKey = QStringLiteral("results/database");
const QString kTasksKey = QStringLiteral("eval/tasks");
const QString kDatasetsKey = QStringLiteral("eval/datasets");
const QString kLimitKey = QStringLiteral("eval/limit");
const QString kEvalSettingKey = QStringLiteral("eval/setting");
const QString kSettingsKey = QStringLiteral("settings/controls");

// Named explicitly (not through QCoreApplication's names) so the tests, which do not set the
// application name, read and write the same store as the program.
QSettings workbenchSettings() {
    return QSettings(QStringLiteral("MLA Workbench"), QStringLiteral("mla-workbench"));
}

// One spelling per folder, so "a/b/" and "a/./b" do not take two places in the recent list.
QString normalizedFolder(const QString& folder) { return QDir::cleanPath(QFileInfo(folder).absoluteFilePath()); }

}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
    setWindowTitle(tr("MLA Workbench"));
    setAcceptDrops(true);

    loader_ = new ModelLoader(this);
    connect(loader_, &ModelLoader::loaded, this, &MainWindow::onModelLoaded);
    connect(loader_, &ModelLoader::failed, this, &MainWindow::onModelFailed);

    buildTabs();
    setCentralWidget(tabs_);
    buildMenus();
    statusBar()->showMessage(tr("Ready"));
}

MainWindow::~MainWindow() = default;

void MainWindow::buildTabs() {
    tabs_ = new QTabWidget;
    tabs_->setDocumentMode(true);
    model_panel_ = new ModelPanel;
    rope_panel_ = new RopeHeatmapPanel;
    spectrum_panel_ = new SpectrumPanel;
    settings_panel_ = new SettingsPanel;
    eval_panel_ = new EvalPanel;
    results_panel_ = new ResultsPanel;
    pareto_panel_ = new ParetoPanel;
    tabs_->addTab(model_panel_, tr("Model"));
    tabs_->addTab(rope_panel_, tr("RoPE heatmap"));
    tabs_->addTab(spectrum_panel_, tr("Spectrum"));
    tabs_->addTab(settings_panel_, tr("Settings"));
    tabs_->addTab(eval_panel_, tr("Eval"));
    tabs_->addTab(results_panel_, tr("Results"));
    tabs_->addTab(pareto_panel_, tr("Pareto"));
    connect(tabs_, &QTabWidget::currentChanged, this, &MainWindow::onTabChanged);

    // Errors go through reportError, the one place that knows whether dialogs are on.
    rope_panel_->setShowDialogs(false);
    spectrum_panel_->setShowDialogs(false);
    eval_panel_->setShowDialogs(false);
    results_panel_->setShowDialogs(false);
    pareto_panel_->setShowDialogs(false);
    const auto routeErrors = [this](auto* panel, const QString& title) {
        connect(panel, &std::remove_pointer_t<decltype(panel)>::errorReported, this,
                [this, title](const QString& message) { reportError(title, message); });
    };
    routeErrors(rope_panel_, tr("RoPE scores"));
    routeErrors(spectrum_panel_, tr("Spectrum"));
    routeErrors(settings_panel_, tr("Convert and save"));
    routeErrors(eval_panel_, tr("Evaluation"));
    routeErrors(results_panel_, tr("Results"));
    routeErrors(pareto_panel_, tr("Pareto"));
    for (PlotPanel* panel : {static_cast<PlotPanel*>(rope_panel_), static_cast<PlotPanel*>(spectrum_panel_),
                             static_cast<PlotPanel*>(pareto_panel_)})
        connect(panel, &PlotPanel::exported, this, [this](const QString& path) {
            statusBar()->showMessage(tr("Exported %1").arg(QDir::toNativeSeparators(path)), 10000);
        });

    // The heatmap's scores (calibrated or cached) feed every 2-norm consumer.
    connect(rope_panel_, &RopeHeatmapPanel::scoresChanged, this, [this] {
        spectrum_panel_->setRopeScores(rope_panel_->scores());
        settings_panel_->setScores(rope_panel_->scores());
        eval_panel_->setScores(rope_panel_->scores());
    });
    // A computed spectrum gives the Settings tab its per-layer approximation errors.
    connect(spectrum_panel_, &SpectrumPanel::computeFinished, this, [this](bool ok) {
        if (ok && spectrum_panel_->report()) settings_panel_->setSpectrum(*spectrum_panel_->report(), spectrum_panel_->reportMask());
    });
    // The Settings tab's setting is "the current setting": the analysis tabs follow it when shown.
    connect(settings_panel_, &SettingsPanel::figuresUpdated, this, [this] { setting_changed_ = true; });
    connect(settings_panel_, &SettingsPanel::evaluateRequested, this, [this](const QString& spec) {
        eval_panel_->setSetting(spec);
        tabs_->setCurrentWidget(eval_panel_);
        statusBar()->showMessage(tr("Evaluate %1: choose datasets and press Run (Ctrl+R)").arg(spec), 10000);
    });
    connect(settings_panel_, &SettingsPanel::convertFinished, this, [this](bool ok, const QString& message) {
        if (ok) statusBar()->showMessage(tr("Saved the MLA model to %1").arg(QDir::toNativeSeparators(message)), 15000);
    });
    // One results database for the Eval, Results and Pareto tabs.
    connect(eval_panel_, &EvalPanel::databasePathChanged, this, &MainWindow::setDatabasePath);
    connect(eval_panel_, &EvalPanel::runsChanged, this, [this] {
        results_panel_->reload();
        pareto_panel_->reload();
    });
    connect(eval_panel_, &EvalPanel::evaluationFinished, this, [this](bool ok, bool cancelled) {
        statusBar()->showMessage(ok ? tr("Evaluation finished: see the Results and Pareto tabs")
                                 : cancelled ? tr("Evaluation cancelled; Run again to resume")
                                             : tr("Evaluation failed"),
                                 10000);
    });
    connect(pareto_panel_, &ParetoPanel::runActivated, this, [this](qint64 runId) {
        tabs_->setCurrentWidget(results_panel_);
        results_panel_->showRun(runId);
    });
    setDatabasePath(eval_panel_->databasePath());
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));

    QAction* open = file->addAction(tr("&Open model folder…"));
    open->setShortcut(QKeySequence::Open);
    connect(open, &QAction::triggered, this, &MainWindow::chooseModelFolder);
    actions_.insert(QStringLiteral("open"), open);

    recent_menu_ = file->addMenu(tr("&Recent models"));
    // Rebuilt on every show, so folders deleted since start-up drop out of the list.
    connect(recent_menu_, &QMenu::aboutToShow, this, &MainWindow::rebuildRecentMenu);
    rebuildRecentMenu();

    QAction* exportPlot = file->addAction(tr("&Export plot…"));
    exportPlot->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_E));
    exportPlot->setToolTip(tr("Export the current tab's plot as PNG, PDF, SVG or its data as CSV"));
    connect(exportPlot, &QAction::triggered, this, &MainWindow::exportCurrentPlot);
    actions_.insert(QStringLiteral("export"), exportPlot);

    file->addSeparator();
    QAction* quit = file->addAction(tr("&Quit"));
    quit->setShortcut(QKeySequence::Quit);
    quit->setMenuRole(QAction::QuitRole);
    connect(quit, &QAction::triggered, this, &QWidget::close);

    QMenu* evaluation = menuBar()->addMenu(tr("E&valuation"));
    QAction* run = evaluation->addAction(tr("&Run evaluation"));
    run->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_R));
    connect(run, &QAction::triggered, this, &MainWindow::runEvaluation);
    actions_.insert(QStringLiteral("run"), run);
    QAction* cancel = evaluation->addAction(tr("&Cancel evaluation"));
    cancel->setShortcut(QKeySequence(Qt::CTRL | Qt::Key_Period));
    connect(cancel, &QAction::triggered, eval_panel_, &EvalPanel::cancelEvaluation);
    actions_.insert(QStringLiteral("cancel"), cancel);

    QMenu* view = menuBar()->addMenu(tr("&View"));
    for (int i = 0; i < tabs_->count(); ++i) {
        QAction* show = view->addAction(tabs_->tabText(i));
        show->setShortcut(QKeySequence(Qt::CTRL | static_cast<Qt::Key>(Qt::Key_1 + i)));
        connect(show, &QAction::triggered, this, [this, i] { tabs_->setCurrentIndex(i); });
    }
}

QAction* MainWindow::action(const QString& name) const { return actions_.value(name, nullptr); }

void MainWindow::chooseModelFolder() {
    const QString start = current_folder_.isEmpty() ? QDir::homePath() : QFileInfo(current_folder_).absolutePath();
    const QString folder = QFileDialog::getExistingDirectory(this, tr("Open model folder"), start);
    if (!folder.isEmpty()) openModelFolder(folder);
}

void MainWindow::exportCurrentPlot() {
    if (auto* panel = qobject_cast<PlotPanel*>(tabs_->currentWidget())) {
        panel->chooseExportFile();
        return;
    }
    statusBar()->showMessage(tr("This tab has no plot: export from RoPE heatmap, Spectrum or Pareto"), 10000);
}

void MainWindow::runEvaluation() {
    tabs_->setCurrentWidget(eval_panel_);
    eval_panel_->startEvaluation();
}

void MainWindow::setDatabasePath(const QString& path) {
    results_panel_->setDatabasePath(path);
    pareto_panel_->setDatabasePath(path);
}

void MainWindow::openModelFolder(const QString& folder) {
    const QString path = normalizedFolder(folder);
    statusBar()->showMessage(tr("Loading %1…").arg(QDir::toNativeSeparators(path)));
    load_timer_.start();
    loader_->load(path);
}

bool MainWindow::isLoading() const { return loader_->isLoading(); }

void MainWindow::onModelLoaded(const QString& folder, const mlawb::ModelSummary& summary) {
    // The Settings tab keeps its choices across models (clamped to the new model's ranges).
    const QVariantMap keep = settings_panel_->isEnabled() ? settings_panel_->saveState() : pending_settings_;
    pending_settings_.clear();
    current_folder_ = folder;
    model_panel_->showSummary(summary);
    spectrum_panel_->setModelFolder(folder);
    settings_panel_->setModelConfig(summary.config);  // before the heatmap, which sends cached scores
    settings_panel_->setModelFolder(folder);
    settings_panel_->restoreState(keep);
    rope_panel_->setModelFolder(folder);  // after: it sends its scores
    eval_panel_->setModelFolder(folder);
    pareto_panel_->setCurrentModelFolder(folder);
    setting_changed_ = true;
    tabs_->setCurrentWidget(model_panel_);
    setWindowTitle(tr("%1 — MLA Workbench").arg(QFileInfo(folder).fileName()));
    if (record_recent_) rememberRecentModel(folder);
    statusBar()->showMessage(
        tr("Loaded %1 in %2 ms").arg(QDir::toNativeSeparators(folder)).arg(load_timer_.elapsed()), 10000);
    Q_EMIT modelLoaded(folder);
}

void MainWindow::onModelFailed(const QString& folder, const QString& message) {
    // The model on show (if any) stays: a failed open must not cost the user what they had.
    last_error_ = message;
    statusBar()->showMessage(tr("Could not open %1").arg(QDir::toNativeSeparators(folder)), 10000);
    reportError(tr("Cannot open model"), message);
    Q_EMIT modelLoadFailed(folder, message);
}

void MainWindow::onTabChanged(int index) {
    QWidget* shown = tabs_->widget(index);
    if (shown == rope_panel_ || shown == spectrum_panel_) syncSettingToAnalysisTabs();
}

void MainWindow::syncSettingToAnalysisTabs() {
    if (!setting_changed_ || !settings_panel_->isEnabled()) return;
    setting_changed_ = false;
    const SettingsInput input = settings_panel_->currentInput();
    const QString strategy = QString::fromStdString(input.spec.strategy);
    // The heatmap and the spectrum offer the strategies a plain r describes.
    static const QStringList kFollowed = {QStringLiteral("2-norm"), QStringLiteral("high"), QStringLiteral("low"),
                                          QStringLiteral("uniform")};
    if (!kFollowed.contains(strategy)) return;
    const int r = static_cast<int>(input.spec.r), start = static_cast<int>(input.spec.start);
    rope_panel_->setStrategy(strategy, r, start);
    if (!spectrum_panel_->isComputing())
        spectrum_panel_->setSetting(strategy, r, input.spec.d_kv > 0 ? static_cast<int>(input.spec.d_kv) : 16, start);
}

void MainWindow::reportError(const QString& title, const QString& message) {
    last_error_ = message;
    statusBar()->showMessage(message, 15000);
    if (show_dialogs_) QMessageBox::critical(this, title, message);
}

void MainWindow::restoreSession() {
    QSettings s = workbenchSettings();
    if (s.contains(kGeometryKey)) restoreGeometry(s.value(kGeometryKey).toByteArray());
    if (s.contains(kWindowStateKey)) restoreState(s.value(kWindowStateKey).toByteArray());
    if (s.contains(kTasksKey) && QFileInfo::exists(s.value(kTasksKey).toString()))
        eval_panel_->setTasksFolder(s.value(kTasksKey).toString());
    if (s.contains(kDatasetsKey)) eval_panel_->setCheckedDatasets(s.value(kDatasetsKey).toStringList());
    if (s.contains(kLimitKey)) eval_panel_->setLimit(s.value(kLimitKey).toInt());
    if (s.contains(kEvalSettingKey)) eval_panel_->setSetting(s.value(kEvalSettingKey).toString());
    if (s.contains(kDatabaseKey)) eval_panel_->setDatabasePath(s.value(kDatabaseKey).toString());
    pending_settings_ = s.value(kSettingsKey).toMap();
    if (settings_panel_->isEnabled()) {  // a model is open already
        settings_panel_->restoreState(pending_settings_);
        pending_settings_.clear();
    }
    const int tab = s.value(kTabKey, 0).toInt();
    if (tab >= 0 && tab < tabs_->count()) tabs_->setCurrentIndex(tab);
    session_restored_ = true;
}

void MainWindow::saveSession() {
    QSettings s = workbenchSettings();
    s.setValue(kGeometryKey, saveGeometry());
    s.setValue(kWindowStateKey, saveState());
    s.setValue(kTabKey, tabs_->currentIndex());
    if (!current_folder_.isEmpty()) s.setValue(kLastModelKey, current_folder_);
    s.setValue(kDatabaseKey, eval_panel_->databasePath());
    s.setValue(kTasksKey, eval_panel_->tasksFolder());
    s.setValue(kDatasetsKey, eval_panel_->checkedDatasets());
    s.setValue(kLimitKey, eval_panel_->limit());
    s.setValue(kEvalSettingKey, eval_panel_->setting());
    if (settings_panel_->isEnabled()) s.setValue(kSettingsKey, settings_panel_->saveState());
    s.sync();
}

QString MainWindow::lastModelFolder() {
    const QString folder = workbenchSettings().value(kLastModelKey).toString();
    return !folder.isEmpty() && QFileInfo(folder).isDir() ? folder : QString();
}

void MainWindow::closeEvent(QCloseEvent* event) {
    if (session_restored_) saveSession();
    eval_panel_->cancelEvaluation();  // the worker stops after its sample; the run resumes later
    QMainWindow::closeEvent(event);
}

QStringList MainWindow::recentModels() const {
    QStringList kept;
    for (const QString& folder : workbenchSettings().value(kRecentModelsKey).toStringList()) {
        if (QFileInfo(folder).isDir() && !kept.contains(folder)) kept.append(folder);
        if (kept.size() == kMaxRecentModels) break;
    }
    return kept;
}

void MainWindow::clearRecentModels() {
    workbenchSettings().remove(kRecentModelsKey);
    rebuildRecentMenu();
}

void MainWindow::rememberRecentModel(const QString& folder) {
    QStringList recent = recentModels();  // already pruned of missing folders
    recent.removeAll(folder);
    recent.prepend(folder);
    while (recent.size() > kMaxRecentModels) recent.removeLast();
    workbenchSettings().setValue(kRecentModelsKey, recent);
    rebuildRecentMenu();
}

void MainWindow::rebuildRecentMenu() {
    recent_menu_->clear();
    const QStringList recent = recentModels();
    // Write the pruning back (only when it pruned: a first start writes nothing).
    if (workbenchSettings().value(kRecentModelsKey).toStringList() != recent)
        workbenchSettings().setValue(kRecentModelsKey, recent);
    for (int i = 0; i < recent.size(); ++i) {
        const QString& folder = recent[i];
        // "&1 wb-tiny-mha  (/path/to/wb-tiny-mha)": a keyboard accelerator, then name and place.
        QAction* action = recent_menu_->addAction(
            QStringLiteral("&%1 %2  (%3)").arg(i + 1).arg(QFileInfo(folder).fileName(), QDir::toNativeSeparators(folder)));
        connect(action, &QAction::triggered, this, [this, folder] { openModelFolder(folder); });
    }
    if (recent.isEmpty()) {
        recent_menu_->addAction(tr("(none)"))->setEnabled(false);
    } else {
        recent_menu_->addSeparator();
        // Queued: clearing rebuilds this menu, which deletes the action still emitting triggered().
        connect(recent_menu_->addAction(tr("Clear list")), &QAction::triggered, this, &MainWindow::clearRecentModels,
                Qt::QueuedConnection);
    }
}

QString MainWindow::folderFromMimeData(const QMimeData* mime) {
    if (!mime || !mime->hasUrls() || mime->urls().size() != 1) return {};
    const QUrl url = mime->urls().first();
    if (!url.isLocalFile()) return {};
    const QString path = url.toLocalFile();
    return QFileInfo(path).isDir() ? path : QString();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* event) {
    if (!folderFromMimeData(event->mimeData()).isEmpty()) event->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* event) {
    const QString folder = folderFromMimeData(event->mimeData());
    if (folder.isEmpty()) return;
    event->acceptProposedAction();
    openModelFolder(folder);
}

}  // namespace mlawb::gui
