#include "app/gui/MainWindow.h"

#include "app/gui/ModelLoader.h"
#include "app/gui/panels/ModelPanel.h"
#include "app/gui/panels/RopeHeatmapPanel.h"  // RoPE heatmap + Spectrum tabs
#include "app/gui/panels/SpectrumPanel.h"     // RoPE heatmap + Spectrum tabs
#include "app/gui/panels/SettingsPanel.h"  // Settings tab

#include <QAction>
#include <QApplication>
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

namespace mlawb::gui {

namespace {

const QString kRecentModelsKey = QStringLiteral("recentModels");

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

    model_panel_ = new ModelPanel;
    tabs_ = new QTabWidget;
    tabs_->setDocumentMode(true);
    tabs_->addTab(model_panel_, tr("Model"));
    // --- RoPE heatmap + Spectrum tabs (begin) ---
    // Their errors go through reportError, the one place that knows whether dialogs are on.
    rope_panel_ = new RopeHeatmapPanel;
    spectrum_panel_ = new SpectrumPanel;
    rope_panel_->setShowDialogs(false);
    spectrum_panel_->setShowDialogs(false);
    tabs_->addTab(rope_panel_, tr("RoPE heatmap"));
    tabs_->addTab(spectrum_panel_, tr("Spectrum"));
    connect(rope_panel_, &RopeHeatmapPanel::errorReported, this,
            [this](const QString& message) { reportError(tr("RoPE scores"), message); });
    connect(spectrum_panel_, &SpectrumPanel::errorReported, this,
            [this](const QString& message) { reportError(tr("Spectrum"), message); });
    // The spectrum's 2-norm mask uses the scores the heatmap calibrated or cached.
    connect(rope_panel_, &RopeHeatmapPanel::scoresChanged, this,
            [this] { spectrum_panel_->setRopeScores(rope_panel_->scores()); });
    // --- RoPE heatmap + Spectrum tabs (end) ---
    // Settings: live memory and error figures; 2-norm uses the heatmap's scores.
    settings_panel_ = new SettingsPanel;
    tabs_->addTab(settings_panel_, tr("Settings"));
    connect(rope_panel_, &RopeHeatmapPanel::scoresChanged, this,
            [this] { settings_panel_->setScores(rope_panel_->scores()); });
    setCentralWidget(tabs_);

    buildMenus();
    statusBar()->showMessage(tr("Ready"));
}

MainWindow::~MainWindow() = default;

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));

    QAction* open = file->addAction(tr("&Open model folder…"));
    open->setShortcut(QKeySequence::Open);
    connect(open, &QAction::triggered, this, &MainWindow::chooseModelFolder);

    recent_menu_ = file->addMenu(tr("&Recent models"));
    // Rebuilt on every show, so folders deleted since start-up drop out of the list.
    connect(recent_menu_, &QMenu::aboutToShow, this, &MainWindow::rebuildRecentMenu);
    rebuildRecentMenu();

    file->addSeparator();
    QAction* quit = file->addAction(tr("&Quit"));
    quit->setShortcut(QKeySequence::Quit);
    quit->setMenuRole(QAction::QuitRole);
    connect(quit, &QAction::triggered, this, &QWidget::close);
}

void MainWindow::chooseModelFolder() {
    const QString start = current_folder_.isEmpty() ? QDir::homePath() : QFileInfo(current_folder_).absolutePath();
    const QString folder = QFileDialog::getExistingDirectory(this, tr("Open model folder"), start);
    if (!folder.isEmpty()) openModelFolder(folder);
}

void MainWindow::openModelFolder(const QString& folder) {
    const QString path = normalizedFolder(folder);
    statusBar()->showMessage(tr("Loading %1…").arg(QDir::toNativeSeparators(path)));
    load_timer_.start();
    loader_->load(path);
}

bool MainWindow::isLoading() const { return loader_->isLoading(); }

void MainWindow::onModelLoaded(const QString& folder, const mlawb::ModelSummary& summary) {
    current_folder_ = folder;
    model_panel_->showSummary(summary);
    spectrum_panel_->setModelFolder(folder);  // RoPE heatmap + Spectrum tabs
    settings_panel_->setModelConfig(summary.config);  // before the heatmap, which sends cached scores
    rope_panel_->setModelFolder(folder);      // RoPE heatmap + Spectrum tabs (after: it sends its scores)
    tabs_->setCurrentWidget(model_panel_);
    setWindowTitle(tr("%1 — MLA Workbench").arg(QFileInfo(folder).fileName()));
    rememberRecentModel(folder);
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

void MainWindow::reportError(const QString& title, const QString& message) {
    if (show_dialogs_) QMessageBox::critical(this, title, message);
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
    workbenchSettings().setValue(kRecentModelsKey, recent);  // write the pruning back
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
