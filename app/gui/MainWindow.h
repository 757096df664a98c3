// MainWindow: menus, shortcuts, drag-and-drop, the status bar, the recent-models list and the
// session (QSettings: window layout, last model, results database, the Settings and Eval
// tabs' choices); it wires the panels to the ModelLoader and to each other and draws nothing
// itself. One panel per tab: Model, RoPE heatmap, Spectrum, Settings, Eval, Results, Pareto.
#pragma once

#include "core/model_summary.h"

#include <QElapsedTimer>
#include <QMap>
#include <QMainWindow>
#include <QString>
#include <QStringList>
#include <QVariantMap>

class QAction;
class QMenu;
class QMimeData;
class QTabWidget;

namespace mlawb::gui {

class EvalPanel;
class ModelLoader;
class ModelPanel;
class ParetoPanel;
class ResultsPanel;
class RopeHeatmapPanel;
class SettingsPanel;
class SpectrumPanel;

class MainWindow : public QMainWindow {
    Q_OBJECT

public:
    static constexpr int kMaxRecentModels = 8;

    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    // Starts loading a checkpoint folder; the result arrives as modelLoaded / modelLoadFailed.
    void openModelFolder(const QString& folder);

    // Error reporting: with dialogs off (tests, --screenshots) errors are only recorded and
    // signalled, so nothing modal blocks an unattended run.
    void setShowDialogs(bool show) { show_dialogs_ = show; }
    QString lastError() const { return last_error_; }

    // Most recent first, at most kMaxRecentModels, folders that no longer exist left out.
    QStringList recentModels() const;
    // Off: opened models are not added to the list (--screenshots leaves no trace).
    void setRecordRecentModels(bool record) { record_recent_ = record; }
    void clearRecentModels();

    // The session: restoreSession() reads the window layout, the results database and the
    // tabs' choices from QSettings and turns saving on; from then on closing the window (or
    // saveSession()) writes them back. Without restoreSession() nothing is read or written
    // (tests, --screenshots), except the recent-models list.
    void restoreSession();
    void saveSession();
    bool sessionRestored() const { return session_restored_; }
    // The model open when the last session ended, or "" (main.cpp opens it at start).
    static QString lastModelFolder();

    // Moves the Settings tab's strategy, r and start to the RoPE heatmap's outline and the
    // Spectrum tab's mask (done when those tabs are shown after the setting changed).
    void syncSettingToAnalysisTabs();

    QString currentModelFolder() const { return current_folder_; }
    QTabWidget* tabs() const { return tabs_; }
    ModelPanel* modelPanel() const { return model_panel_; }
    RopeHeatmapPanel* ropeHeatmapPanel() const { return rope_panel_; }
    SpectrumPanel* spectrumPanel() const { return spectrum_panel_; }
    SettingsPanel* settingsPanel() const { return settings_panel_; }
    EvalPanel* evalPanel() const { return eval_panel_; }
    ResultsPanel* resultsPanel() const { return results_panel_; }
    ParetoPanel* paretoPanel() const { return pareto_panel_; }
    // Menu actions, for tests of the shortcuts: "open", "run", "cancel", "export".
    QAction* action(const QString& name) const;
    bool isLoading() const;

    // The one local folder in a drag's payload, or "" when it carries anything else.
    static QString folderFromMimeData(const QMimeData* mime);

Q_SIGNALS:
    void modelLoaded(const QString& folder);
    void modelLoadFailed(const QString& folder, const QString& message);

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;
    void closeEvent(QCloseEvent* event) override;
    // The single place errors reach the user; override to route them elsewhere.
    virtual void reportError(const QString& title, const QString& message);

private:
    void buildTabs();
    void buildMenus();
    void rebuildRecentMenu();
    void rememberRecentModel(const QString& folder);
    void chooseModelFolder();
    void exportCurrentPlot();
    void runEvaluation();
    void onModelLoaded(const QString& folder, const mlawb::ModelSummary& summary);
    void onModelFailed(const QString& folder, const QString& message);
    void onTabChanged(int index);
    void setDatabasePath(const QString& path);

    ModelLoader* loader_ = nullptr;
    QTabWidget* tabs_ = nullptr;
    ModelPanel* model_panel_ = nullptr;
    RopeHeatmapPanel* rope_panel_ = nullptr;
    SpectrumPanel* spectrum_panel_ = nullptr;
    SettingsPanel* settings_panel_ = nullptr;
    EvalPanel* eval_panel_ = nullptr;
    ResultsPanel* results_panel_ = nullptr;
    ParetoPanel* pareto_panel_ = nullptr;
    QMenu* recent_menu_ = nullptr;
    QMap<QString, QAction*> actions_;
    QString current_folder_;  // folder of the summary on show ("" before the first load)
    QString last_error_;
    bool show_dialogs_ = true;
    bool session_restored_ = false;
    bool record_recent_ = true;
    bool setting_changed_ = false;  // Settings changed since the analysis tabs last followed it
    QVariantMap pending_settings_;  // restored Settings-tab choices, applied at the next model load
    QElapsedTimer load_timer_;      // for the "loaded in N ms" status message
};

}  // namespace mlawb::gui
