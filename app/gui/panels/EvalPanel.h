// EvalPanel: run a LongBench-style evaluation of the open model with a setting, off the GUI
// thread (EvalSession in a BackgroundJob): a tasks folder (the bundled longbench-syn
// preselected), a checklist of its datasets, a limit, the setting (typed, or sent by the Settings
// tab's "Evaluate this setting"), the results database. While it runs: a progress bar over every
// sample, the ETA, live per-dataset scores and Cancel. Every sample is recorded as soon as it is
// scored, so Cancel loses at most the sample in flight and Run with the same choices resumes.
#pragma once

#include "analysis/rope_scores.h"
#include "app/gui/EvalSession.h"

#include <QElapsedTimer>
#include <QString>
#include <QStringList>
#include <QWidget>

#include <optional>

class QLabel;
class QLineEdit;
class QListWidget;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace mlawb::gui {

class BackgroundJob;

class EvalPanel : public QWidget {
    Q_OBJECT

public:
    enum ScoreColumn { ColDataset, ColRun, ColDone, ColScore, ColState, ScoreColumnCount };

    explicit EvalPanel(QWidget* parent = nullptr);

    void setModelFolder(const QString& folder);
    QString modelFolder() const { return model_folder_; }
    // Lists the folder's datasets (all checked); false (and reported) when it is not a task folder.
    bool setTasksFolder(const QString& folder);
    QString tasksFolder() const;
    QStringList availableDatasets() const;
    QStringList checkedDatasets() const;
    void setCheckedDatasets(const QStringList& datasets);
    void setLimit(int limit);  // -1: every record
    int limit() const;
    void setSetting(const QString& spec);  // --mla text; "strategy=full" is the original model
    QString setting() const;
    // In-memory 2-norm scores for a 2-norm setting without scores= (from the RoPE heatmap tab).
    void setScores(const std::optional<mlawb::RopeScores>& scores) { scores_ = scores; }
    void setDatabasePath(const QString& path);
    QString databasePath() const;

    // Starts the evaluation; false (and the reason reported) when something is missing or a run
    // is going on.
    bool startEvaluation();
    void cancelEvaluation();
    bool isRunning() const;

    QTableWidget* scoresTable() const { return scores_table_; }
    QProgressBar* progressBar() const { return progress_; }
    QPushButton* runButton() const { return run_button_; }
    QPushButton* cancelButton() const { return cancel_button_; }
    QString etaText() const;
    QString statusText() const;
    const std::optional<EvalOutcome>& lastOutcome() const { return outcome_; }

    void setShowDialogs(bool show) { show_dialogs_ = show; }
    QString lastError() const { return last_error_; }

    // The folder's default database: <AppDataLocation>/results.db.
    static QString defaultDatabasePath();

Q_SIGNALS:
    void evaluationFinished(bool ok, bool cancelled, const QString& message);
    // One sample recorded (runs hold new data); `datasetDone` counts earlier samples too.
    void sampleScored(const QString& dataset, qint64 runId, int datasetDone);
    // A dataset's run finished, or the evaluation stopped: the database changed.
    void runsChanged();
    void databasePathChanged(const QString& path);
    void errorReported(const QString& message);

private:
    void buildUi();
    void chooseTasksFolder();
    void chooseDatabase();
    void validateSetting();
    void onProgress(const EvalProgress& p);
    void onFinished(bool ok, bool cancelled, const QString& message);
    void setRunning(bool running);
    int rowOf(const QString& dataset) const;
    void report(const QString& title, const QString& message);

    QString model_folder_;
    std::optional<mlawb::RopeScores> scores_;
    std::optional<EvalOutcome> outcome_;
    BackgroundJob* job_ = nullptr;
    QElapsedTimer clock_;          // since Run, for the ETA
    bool show_dialogs_ = true;
    QString last_error_;

    QLabel* model_label_ = nullptr;
    QLineEdit* tasks_edit_ = nullptr;
    QListWidget* datasets_ = nullptr;
    QSpinBox* limit_ = nullptr;
    QLineEdit* setting_edit_ = nullptr;
    QLabel* setting_check_ = nullptr;
    QLineEdit* db_edit_ = nullptr;
    QPushButton* run_button_ = nullptr;
    QPushButton* cancel_button_ = nullptr;
    QProgressBar* progress_ = nullptr;
    QLabel* eta_ = nullptr;
    QLabel* status_ = nullptr;
    QTableWidget* scores_table_ = nullptr;
};

}  // namespace mlawb::gui
