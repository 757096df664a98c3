// MainWindow: menus, drag-and-drop, the status bar and the recent-models list; it wires the
// panels to the ModelLoader and to each other and draws nothing itself. Each panel lives in
// its own tab (Model now; RoPE heatmap, Spectrum, Settings, Eval, Results, Pareto later).
#pragma once

#include "core/model_summary.h"

#include <QElapsedTimer>
#include <QMainWindow>
#include <QString>
#include <QStringList>

class QMenu;
class QMimeData;
class QTabWidget;

namespace mlawb::gui {

class ModelLoader;
class ModelPanel;
class RopeHeatmapPanel;  // RoPE heatmap tab
class SpectrumPanel;     // Spectrum tab
class SettingsPanel;  // Settings tab

class MainWindow : public QMainWindow {
    Q_OBJECT

public:
    static constexpr int kMaxRecentModels = 8;

    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    // Starts loading a checkpoint folder; the result arrives as modelLoaded / modelLoadFailed.
    void openModelFolder(const QString& folder);

    // Error reporting: with dialogs off (tests, --screenshot) errors are only recorded and
    // signalled, so nothing modal blocks an unattended run.
    void setShowDialogs(bool show) { show_dialogs_ = show; }
    QString lastError() const { return last_error_; }

    // Most recent first, at most kMaxRecentModels, folders that no longer exist left out.
    QStringList recentModels() const;
    void clearRecentModels();

    QString currentModelFolder() const { return current_folder_; }
    ModelPanel* modelPanel() const { return model_panel_; }
    RopeHeatmapPanel* ropeHeatmapPanel() const { return rope_panel_; }  // RoPE heatmap tab
    SpectrumPanel* spectrumPanel() const { return spectrum_panel_; }    // Spectrum tab
    SettingsPanel* settingsPanel() const { return settings_panel_; }  // Settings tab
    bool isLoading() const;

    // The one local folder in a drag's payload, or "" when it carries anything else.
    static QString folderFromMimeData(const QMimeData* mime);

Q_SIGNALS:
    void modelLoaded(const QString& folder);
    void modelLoadFailed(const QString& folder, const QString& message);

protected:
    void dragEnterEvent(QDragEnterEvent* event) override;
    void dropEvent(QDropEvent* event) override;
    // The single place errors reach the user; override to route them elsewhere.
    virtual void reportError(const QString& title, const QString& message);

private:
    void buildMenus();
    void rebuildRecentMenu();
    void rememberRecentModel(const QString& folder);
    void chooseModelFolder();
    void onModelLoaded(const QString& folder, const mlawb::ModelSummary& summary);
    void onModelFailed(const QString& folder, const QString& message);

    ModelLoader* loader_ = nullptr;
    QTabWidget* tabs_ = nullptr;
    ModelPanel* model_panel_ = nullptr;
    RopeHeatmapPanel* rope_panel_ = nullptr;  // RoPE heatmap tab
    SpectrumPanel* spectrum_panel_ = nullptr;  // Spectrum tab
    SettingsPanel* settings_panel_ = nullptr;  // Settings tab
    QMenu* recent_menu_ = nullptr;
    QString current_folder_;  // folder of the summary on show ("" before the first load)
    QString last_error_;
    bool show_dialogs_ = true;
    QElapsedTimer load_timer_;  // for the "loaded in N ms" status message
};

}  // namespace mlawb::gui
