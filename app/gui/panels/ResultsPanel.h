// ResultsPanel: every run of the results database in a sortable, filterable table (a
// QStandardItemModel behind a QSortFilterProxyModel: free text over every column plus a status
// filter); the selected run's metrics per bucket, memory row and options below; select two runs
// and Compare shows ResultsStore::compare: per dataset and bucket deltas (B - A) and the samples
// whose score flipped, with the prompt rebuilt from the run's task folder and both predictions.
#pragma once

#include "eval/store.h"

#include <QString>
#include <QWidget>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

class QComboBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QSortFilterProxyModel;
class QStandardItemModel;
class QTabWidget;
class QTableView;
class QTableWidget;

namespace mlawb::gui {

class ResultsPanel : public QWidget {
    Q_OBJECT

public:
    enum Column { ColId, ColModel, ColSetting, ColTask, ColDataset, ColStatus, ColSamples, ColMetric, ColScore,
                  ColKvBytes, ColStarted, ColumnCount };

    explicit ResultsPanel(QWidget* parent = nullptr);
    ~ResultsPanel() override;

    void setDatabasePath(const QString& path);  // reloads
    QString databasePath() const { return db_path_; }
    void reload();  // keeps the selection where the runs still exist

    // Selects the run's row (clearing the filters if they hide it) and shows its details; false
    // when the database has no such run.
    bool showRun(qint64 runId);
    // Compares two runs (deltas are b - a); false (and the error reported) when one is missing.
    bool compareRuns(qint64 runA, qint64 runB);
    // Compares the two selected rows, the older run as A.
    bool compareSelected();
    void setFilterText(const QString& text);
    void setStatusFilter(const QString& status);  // "" = any
    // Shows sample `row` of the flipped-samples table (prompt and predictions) below it.
    void showFlippedSample(int row);

    QTableView* runsView() const { return runs_view_; }
    QSortFilterProxyModel* proxyModel() const { return proxy_; }
    QStandardItemModel* runsModel() const { return model_; }
    QTableWidget* runMetricsTable() const { return run_metrics_; }
    QTableWidget* metricDeltaTable() const { return deltas_; }
    QTableWidget* flippedTable() const { return flipped_; }
    QPlainTextEdit* sampleView() const { return sample_view_; }
    QPushButton* compareButton() const { return compare_button_; }
    QTabWidget* detailTabs() const { return details_; }
    const std::optional<mlawb::RunComparison>& comparison() const { return comparison_; }
    qint64 shownRunId() const { return shown_run_; }
    std::vector<qint64> selectedRunIds() const;

    void setShowDialogs(bool show) { show_dialogs_ = show; }
    QString lastError() const { return last_error_; }

Q_SIGNALS:
    void errorReported(const QString& message);

private:
    struct PromptCache;

    void buildUi();
    void fillRuns(const std::vector<mlawb::RunDetail>& runs);
    void showRunDetail(const mlawb::RunDetail& run);
    void showComparison();
    void onSelectionChanged();
    void report(const QString& title, const QString& message);
    QString promptFor(const mlawb::RunDetail& run, const std::string& sampleId, QString* answers);

    QString db_path_;
    std::vector<mlawb::RunDetail> runs_;
    std::optional<mlawb::RunComparison> comparison_;
    qint64 shown_run_ = 0;
    bool show_dialogs_ = true;
    QString last_error_;
    std::unique_ptr<PromptCache> prompts_;

    QLineEdit* filter_ = nullptr;
    QComboBox* status_filter_ = nullptr;
    QPushButton* compare_button_ = nullptr;
    QLabel* status_ = nullptr;
    QStandardItemModel* model_ = nullptr;
    QSortFilterProxyModel* proxy_ = nullptr;
    QTableView* runs_view_ = nullptr;
    QTabWidget* details_ = nullptr;
    QLabel* run_header_ = nullptr;
    QTableWidget* run_metrics_ = nullptr;
    QLabel* compare_header_ = nullptr;
    QTableWidget* deltas_ = nullptr;
    QTableWidget* flipped_ = nullptr;
    QPlainTextEdit* sample_view_ = nullptr;
};

}  // namespace mlawb::gui
