#include "app/gui/panels/ResultsPanel.h"

#include "app/gui/RunCatalog.h"
#include "eval/longbench.h"

#include <QComboBox>
#include <QDir>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QStandardItemModel>
#include <QTabWidget>
#include <QTableView>
#include <QTableWidget>
#include <QVBoxLayout>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

namespace mlawb::gui {

namespace {

const QString kDash = QStringLiteral("—");

// The free-text filter over every column, and the status column matched exactly.
class RunsProxy : public QSortFilterProxyModel {
public:
    using QSortFilterProxyModel::QSortFilterProxyModel;
    void setStatus(const QString& status) {
        status_ = status;
        invalidateFilter();
    }

protected:
    bool filterAcceptsRow(int row, const QModelIndex& parent) const override {
        if (!status_.isEmpty() &&
            sourceModel()->index(row, ResultsPanel::ColStatus, parent).data().toString() != status_)
            return false;
        return QSortFilterProxyModel::filterAcceptsRow(row, parent);
    }

private:
    QString status_;
};

QStandardItem* cell(const QString& text, const QVariant& sortKey, bool number = false) {
    auto* item = new QStandardItem(text);
    item->setData(sortKey, Qt::UserRole);
    item->setEditable(false);
    if (number) item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return item;
}

QString scoreText(const std::optional<double>& v) { return v ? QString::number(*v, 'f', 2) : kDash; }

QTableWidgetItem* tableItem(const QString& text, bool number = false) {
    auto* item = new QTableWidgetItem(text);
    if (number) item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return item;
}

QTableWidget* makeTable(const QStringList& headers) {
    auto* table = new QTableWidget(0, static_cast<int>(headers.size()));
    table->setHorizontalHeaderLabels(headers);
    table->verticalHeader()->setVisible(false);
    table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table->setSelectionBehavior(QAbstractItemView::SelectRows);
    table->setAlternatingRowColors(true);
    table->verticalHeader()->setDefaultSectionSize(table->fontMetrics().height() + 8);
    return table;
}

QString bucketText(const std::string& bucket) {
    return bucket.empty() ? QObject::tr("overall") : QString::fromStdString(bucket);
}

QString runCaption(const RunDetail& d) {
    return QObject::tr("run %1 · %2 · %3")
        .arg(d.summary.id)
        .arg(QString::fromStdString(setting_label(d.summary.setting_spec)), QString::fromStdString(d.summary.dataset));
}

}  // namespace

// Task folders read for prompts, by folder and dataset: a comparison's flipped samples are
// usually shown one after another from one dataset.
struct ResultsPanel::PromptCache {
    std::string key;
    std::string prompt_template;
    std::map<std::string, LongBenchRecord> records;
};

ResultsPanel::ResultsPanel(QWidget* parent) : QWidget(parent), prompts_(std::make_unique<PromptCache>()) { buildUi(); }

ResultsPanel::~ResultsPanel() = default;

void ResultsPanel::buildUi() {
    filter_ = new QLineEdit;
    filter_->setPlaceholderText(tr("Filter: model, setting, dataset, metric… (any column)"));
    filter_->setClearButtonEnabled(true);
    status_filter_ = new QComboBox;
    status_filter_->addItem(tr("any status"), QString());
    for (const char* s : {"finished", "running", "cancelled", "failed"})
        status_filter_->addItem(QString::fromLatin1(s), QString::fromLatin1(s));
    auto* reloadButton = new QPushButton(tr("Reload"));
    compare_button_ = new QPushButton(tr("Compare selected"));
    compare_button_->setEnabled(false);
    compare_button_->setToolTip(tr("Select two runs (Ctrl+click) to compare them, the older as A"));
    status_ = new QLabel;
    status_->setWordWrap(true);

    model_ = new QStandardItemModel(0, ColumnCount, this);
    model_->setHorizontalHeaderLabels({tr("Run"), tr("Model"), tr("Setting"), tr("Task"), tr("Dataset"), tr("Status"),
                                       tr("Samples"), tr("Metric"), tr("Score"), tr("KV B/token"), tr("Started (UTC)")});
    auto* proxy = new RunsProxy(this);
    proxy_ = proxy;
    proxy_->setSourceModel(model_);
    proxy_->setSortRole(Qt::UserRole);
    proxy_->setFilterKeyColumn(-1);
    proxy_->setFilterCaseSensitivity(Qt::CaseInsensitive);
    runs_view_ = new QTableView;
    runs_view_->setModel(proxy_);
    runs_view_->setSortingEnabled(true);
    runs_view_->sortByColumn(ColId, Qt::DescendingOrder);  // newest first
    runs_view_->setSelectionBehavior(QAbstractItemView::SelectRows);
    runs_view_->setSelectionMode(QAbstractItemView::ExtendedSelection);
    runs_view_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    runs_view_->setAlternatingRowColors(true);
    runs_view_->verticalHeader()->setVisible(false);
    runs_view_->verticalHeader()->setDefaultSectionSize(runs_view_->fontMetrics().height() + 8);
    runs_view_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    runs_view_->horizontalHeader()->setSectionResizeMode(ColSetting, QHeaderView::Stretch);

    // Details of one run.
    auto* runPage = new QWidget;
    auto* runLayout = new QVBoxLayout(runPage);
    run_header_ = new QLabel(tr("Select a run to see its metrics per bucket."));
    run_header_->setWordWrap(true);
    run_header_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    run_metrics_ = makeTable({tr("Metric"), tr("Bucket"), tr("Value")});
    run_metrics_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    runLayout->addWidget(run_header_);
    runLayout->addWidget(run_metrics_, 1);

    // Two runs compared.
    auto* comparePage = new QWidget;
    auto* compareLayout = new QVBoxLayout(comparePage);
    compare_header_ = new QLabel(tr("Select two runs and press Compare."));
    compare_header_->setWordWrap(true);
    compare_header_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    deltas_ = makeTable({tr("Metric"), tr("Bucket"), tr("A"), tr("B"), tr("B − A")});
    deltas_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    deltas_->horizontalHeader()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
    deltas_->horizontalHeader()->setSectionResizeMode(1, QHeaderView::ResizeToContents);
    flipped_ = makeTable({tr("Change"), tr("Sample"), tr("Score A"), tr("Score B"), tr("Prediction A"), tr("Prediction B")});
    flipped_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    flipped_->horizontalHeader()->setSectionResizeMode(4, QHeaderView::Stretch);
    flipped_->horizontalHeader()->setSectionResizeMode(5, QHeaderView::Stretch);
    flipped_->setSelectionMode(QAbstractItemView::SingleSelection);
    sample_view_ = new QPlainTextEdit;
    sample_view_->setReadOnly(true);
    sample_view_->setPlaceholderText(tr("Select a flipped sample to see its prompt and both predictions."));
    auto* compareSplit = new QSplitter(Qt::Horizontal);
    compareSplit->addWidget(deltas_);
    auto* samplesSplit = new QSplitter(Qt::Vertical);
    samplesSplit->addWidget(flipped_);
    samplesSplit->addWidget(sample_view_);
    compareSplit->addWidget(samplesSplit);
    compareSplit->setStretchFactor(0, 2);
    compareSplit->setStretchFactor(1, 3);
    compareLayout->addWidget(compare_header_);
    compareLayout->addWidget(compareSplit, 1);

    details_ = new QTabWidget;
    details_->addTab(runPage, tr("Run"));
    details_->addTab(comparePage, tr("Comparison"));

    auto* controls = new QHBoxLayout;
    controls->addWidget(filter_, 1);
    controls->addWidget(status_filter_);
    controls->addWidget(reloadButton);
    controls->addWidget(compare_button_);

    auto* split = new QSplitter(Qt::Vertical);
    split->addWidget(runs_view_);
    split->addWidget(details_);
    split->setStretchFactor(0, 2);
    split->setStretchFactor(1, 3);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(controls);
    layout->addWidget(status_);
    layout->addWidget(split, 1);

    connect(filter_, &QLineEdit::textChanged, proxy_, &QSortFilterProxyModel::setFilterFixedString);
    connect(status_filter_, &QComboBox::currentIndexChanged, this,
            [this, proxy] { proxy->setStatus(status_filter_->currentData().toString()); });
    connect(reloadButton, &QPushButton::clicked, this, &ResultsPanel::reload);
    connect(compare_button_, &QPushButton::clicked, this, &ResultsPanel::compareSelected);
    connect(runs_view_->selectionModel(), &QItemSelectionModel::selectionChanged, this, &ResultsPanel::onSelectionChanged);
    connect(flipped_, &QTableWidget::currentCellChanged, this, [this](int row) { showFlippedSample(row); });
    status_->setText(tr("No results database yet: run an evaluation in the Eval tab."));
}

void ResultsPanel::setDatabasePath(const QString& path) {
    db_path_ = path;
    comparison_.reset();
    reload();
}

void ResultsPanel::reload() {
    const std::vector<qint64> selected = selectedRunIds();
    runs_.clear();
    if (db_path_.isEmpty() || !QFileInfo::exists(db_path_)) {
        fillRuns({});
        status_->setText(db_path_.isEmpty() ? tr("No results database chosen.")
                                            : tr("%1 does not exist yet: run an evaluation in the Eval tab.")
                                                  .arg(QDir::toNativeSeparators(db_path_)));
        return;
    }
    try {
        runs_ = load_runs(db_path_.toStdString());
    } catch (const std::exception& e) {
        fillRuns({});
        report(tr("Cannot read the results"), QString::fromStdString(e.what()));
        return;
    }
    fillRuns(runs_);
    status_->setText(tr("%1 runs in %2.").arg(runs_.size()).arg(QDir::toNativeSeparators(db_path_)));
    // Keep what was selected.
    for (qint64 id : selected) {
        for (int row = 0; row < proxy_->rowCount(); ++row) {
            const QModelIndex index = proxy_->index(row, ColId);
            if (index.data(Qt::UserRole).toLongLong() == id)
                runs_view_->selectionModel()->select(
                    index, QItemSelectionModel::Select | QItemSelectionModel::Rows);
        }
    }
}

void ResultsPanel::fillRuns(const std::vector<RunDetail>& runs) {
    const QSignalBlocker block(runs_view_->selectionModel());
    model_->removeRows(0, model_->rowCount());
    for (const RunDetail& d : runs) {
        const RunSummary& s = d.summary;
        QList<QStandardItem*> row;
        row.append(cell(QString::number(s.id), QVariant::fromValue<qlonglong>(s.id), true));
        const QString modelName = QFileInfo(QString::fromStdString(s.model_path)).fileName();
        QStandardItem* modelItem = cell(modelName, modelName);
        modelItem->setToolTip(QString::fromStdString(s.model_path + "\n" + s.model_hash));
        row.append(modelItem);
        QStandardItem* settingItem = cell(QString::fromStdString(setting_label(s.setting_spec)),
                                          QString::fromStdString(s.setting_spec));
        settingItem->setToolTip(QString::fromStdString(s.setting_spec));
        row.append(settingItem);
        row.append(cell(QString::fromStdString(s.task), QString::fromStdString(s.task)));
        row.append(cell(QString::fromStdString(s.dataset), QString::fromStdString(s.dataset)));
        row.append(cell(QString::fromLatin1(run_status_name(s.status)), QString::fromLatin1(run_status_name(s.status))));
        row.append(cell(QString::number(s.samples), QVariant::fromValue<qlonglong>(s.samples), true));
        row.append(cell(s.main_metric ? QString::fromStdString(s.main_metric->name) : kDash,
                        s.main_metric ? QString::fromStdString(s.main_metric->name) : QString()));
        row.append(cell(s.main_metric ? QString::number(s.main_metric->value, 'f', 2) : kDash,
                        s.main_metric ? QVariant(s.main_metric->value) : QVariant(-1e300), true));
        row.append(cell(d.memory ? QString::number(d.memory->bytes_formula, 'f', 0) : kDash,
                        d.memory ? QVariant(d.memory->bytes_formula) : QVariant(-1.0), true));
        row.append(cell(QString::fromStdString(s.started_at), QString::fromStdString(s.started_at)));
        model_->appendRow(row);
    }
}

std::vector<qint64> ResultsPanel::selectedRunIds() const {
    std::vector<qint64> ids;
    for (const QModelIndex& index : runs_view_->selectionModel()->selectedRows(ColId))
        ids.push_back(index.data(Qt::UserRole).toLongLong());
    std::sort(ids.begin(), ids.end());
    return ids;
}

void ResultsPanel::onSelectionChanged() {
    const std::vector<qint64> ids = selectedRunIds();
    compare_button_->setEnabled(ids.size() == 2);
    if (ids.size() != 1) return;
    for (const RunDetail& d : runs_)
        if (d.summary.id == ids.front()) {
            showRunDetail(d);
            details_->setCurrentIndex(0);
        }
}

void ResultsPanel::showRunDetail(const RunDetail& d) {
    shown_run_ = d.summary.id;
    QString header = runCaption(d) + QStringLiteral(" · ") + QString::fromLatin1(run_status_name(d.summary.status));
    header += tr("\nsetting %1\nmodel %2").arg(QString::fromStdString(d.summary.setting_spec),
                                                 QString::fromStdString(d.summary.model_path));
    header += tr("\noptions %1 · %2 samples · started %3")
                  .arg(QString::fromStdString(options_summary(d.options_json)))
                  .arg(d.summary.samples)
                  .arg(QString::fromStdString(d.summary.started_at));
    if (d.memory)
        header += tr(" · KV cache %1 elements = %2 B per token (all layers)")
                      .arg(d.memory->kv_elements_per_token)
                      .arg(d.memory->bytes_formula, 0, 'f', 0);
    if (!d.error.empty()) header += tr("\nerror: %1").arg(QString::fromStdString(d.error));
    run_header_->setText(header);
    run_metrics_->setRowCount(static_cast<int>(d.metrics.size()));
    for (int row = 0; row < run_metrics_->rowCount(); ++row) {
        const MetricRow& m = d.metrics[static_cast<size_t>(row)];
        run_metrics_->setItem(row, 0, tableItem(QString::fromStdString(m.name)));
        run_metrics_->setItem(row, 1, tableItem(bucketText(m.bucket)));
        run_metrics_->setItem(row, 2, tableItem(QString::number(m.value, 'f', 2), true));
    }
}

bool ResultsPanel::showRun(qint64 runId) {
    const auto found = std::find_if(runs_.begin(), runs_.end(), [runId](const RunDetail& d) { return d.summary.id == runId; });
    if (found == runs_.end()) {
        reload();  // the run may be newer than the table
        if (std::none_of(runs_.begin(), runs_.end(), [runId](const RunDetail& d) { return d.summary.id == runId; })) {
            report(tr("No such run"), tr("%1: no run with id %2").arg(db_path_).arg(runId));
            return false;
        }
    }
    for (int pass = 0; pass < 2; ++pass) {
        for (int row = 0; row < proxy_->rowCount(); ++row) {
            const QModelIndex index = proxy_->index(row, ColId);
            if (index.data(Qt::UserRole).toLongLong() != runId) continue;
            runs_view_->selectionModel()->select(index, QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
            runs_view_->scrollTo(index);
            return true;
        }
        // Hidden by the filters: clear them and look again.
        filter_->clear();
        status_filter_->setCurrentIndex(0);
    }
    return false;
}

void ResultsPanel::setFilterText(const QString& text) { filter_->setText(text); }

void ResultsPanel::setStatusFilter(const QString& status) {
    const int index = status_filter_->findData(status);
    status_filter_->setCurrentIndex(index >= 0 ? index : 0);
}

bool ResultsPanel::compareSelected() {
    const std::vector<qint64> ids = selectedRunIds();
    if (ids.size() != 2) {
        report(tr("Compare"), tr("Select exactly two runs to compare (%1 selected).").arg(ids.size()));
        return false;
    }
    return compareRuns(ids[0], ids[1]);
}

bool ResultsPanel::compareRuns(qint64 runA, qint64 runB) {
    try {
        const ResultsStore store = ResultsStore::open(db_path_.toStdString(), ResultsStore::OpenMode::ExistingOnly);
        comparison_ = store.compare(runA, runB);
    } catch (const std::exception& e) {
        comparison_.reset();
        report(tr("Cannot compare"), QString::fromStdString(e.what()));
        return false;
    }
    // The table shows which two rows are compared (without switching the details to one run).
    {
        const QSignalBlocker block(runs_view_->selectionModel());
        runs_view_->selectionModel()->clearSelection();
        for (qint64 id : {runA, runB})
            for (int row = 0; row < proxy_->rowCount(); ++row)
                if (proxy_->index(row, ColId).data(Qt::UserRole).toLongLong() == id) {
                    runs_view_->selectionModel()->select(proxy_->index(row, ColId),
                                                         QItemSelectionModel::Select | QItemSelectionModel::Rows);
                    runs_view_->scrollTo(proxy_->index(row, ColId));
                }
        compare_button_->setEnabled(selectedRunIds().size() == 2);
    }
    runs_view_->viewport()->update();
    showComparison();
    details_->setCurrentIndex(1);
    return true;
}

void ResultsPanel::showComparison() {
    const RunComparison& c = *comparison_;
    QString header = tr("A: %1\nB: %2").arg(runCaption(c.a), runCaption(c.b));
    header += tr("\n%1 samples flipped, %2 unchanged").arg(c.changed.size()).arg(c.unchanged);
    if (!c.only_a.empty() || !c.only_b.empty())
        header += tr(", %1 only in A, %2 only in B").arg(c.only_a.size()).arg(c.only_b.size());
    if (c.a.summary.dataset != c.b.summary.dataset)
        header += tr(" (different datasets: only the metrics compare)");
    compare_header_->setText(header);

    deltas_->setRowCount(static_cast<int>(c.metrics.size()));
    for (int row = 0; row < deltas_->rowCount(); ++row) {
        const MetricDelta& m = c.metrics[static_cast<size_t>(row)];
        deltas_->setItem(row, 0, tableItem(QString::fromStdString(m.name)));
        deltas_->setItem(row, 1, tableItem(bucketText(m.bucket)));
        deltas_->setItem(row, 2, tableItem(scoreText(m.a), true));
        deltas_->setItem(row, 3, tableItem(scoreText(m.b), true));
        QTableWidgetItem* delta = tableItem(m.a && m.b ? QString::asprintf("%+.2f", *m.b - *m.a) : kDash, true);
        if (m.a && m.b && *m.b != *m.a) delta->setForeground(*m.b > *m.a ? QColor(46, 125, 50) : QColor(198, 40, 40));
        deltas_->setItem(row, 4, delta);
    }
    {
        const QSignalBlocker block(flipped_);
        flipped_->setRowCount(static_cast<int>(c.changed.size()));
        for (int row = 0; row < flipped_->rowCount(); ++row) {
            const SampleChange& s = c.changed[static_cast<size_t>(row)];
            QTableWidgetItem* kind = tableItem(QString::fromLatin1(sample_change_name(s.kind)));
            kind->setForeground(s.kind == SampleChange::Kind::Gained ? QColor(46, 125, 50)
                                : s.kind == SampleChange::Kind::Lost ? QColor(198, 40, 40)
                                                                     : QColor(178, 106, 0));
            flipped_->setItem(row, 0, kind);
            flipped_->setItem(row, 1, tableItem(QString::fromStdString(s.sample_id)));
            flipped_->setItem(row, 2, tableItem(QString::number(s.score_a, 'f', 2), true));
            flipped_->setItem(row, 3, tableItem(QString::number(s.score_b, 'f', 2), true));
            flipped_->setItem(row, 4, tableItem(QString::fromStdString(s.prediction_a).simplified()));
            flipped_->setItem(row, 5, tableItem(QString::fromStdString(s.prediction_b).simplified()));
        }
    }
    sample_view_->clear();
    if (!c.changed.empty()) flipped_->setCurrentCell(0, 0);  // shows the first one's prompt
}

QString ResultsPanel::promptFor(const RunDetail& run, const std::string& sampleId, QString* answers) {
    if (run.summary.task != "longbench") return tr("(prompts are shown for LongBench runs)");
    std::string folder;
    try {
        const auto options = nlohmann::json::parse(run.options_json);
        folder = options.value("tasks", std::string());
    } catch (const std::exception&) {
    }
    if (folder.empty()) return tr("(the run does not record its task folder)");
    const std::string key = folder + "\n" + run.summary.dataset;
    try {
        if (prompts_->key != key) {
            const LongBenchTaskSet tasks = LongBenchTaskSet::open(folder);
            LongBenchDataset data = tasks.load(run.summary.dataset, false);
            prompts_->records.clear();
            for (LongBenchRecord& r : data.records) prompts_->records.emplace(r.id, std::move(r));
            prompts_->prompt_template = tasks.prompt_template(run.summary.dataset);
            prompts_->key = key;
        }
    } catch (const std::exception& e) {
        prompts_->key.clear();
        return tr("(cannot rebuild the prompt: %1)").arg(QString::fromStdString(e.what()));
    }
    const auto found = prompts_->records.find(sampleId);
    if (found == prompts_->records.end())
        return tr("(%1 is no longer in %2)").arg(QString::fromStdString(sampleId), QString::fromStdString(folder));
    QStringList list;
    for (const std::string& a : found->second.answers) list.append(QString::fromStdString(a));
    if (answers) *answers = list.join(QStringLiteral(" | "));
    return QString::fromStdString(fill_prompt(prompts_->prompt_template, found->second));
}

void ResultsPanel::showFlippedSample(int row) {
    if (!comparison_ || row < 0 || row >= static_cast<int>(comparison_->changed.size())) {
        sample_view_->clear();
        return;
    }
    const RunComparison& c = *comparison_;
    const SampleChange& s = c.changed[static_cast<size_t>(row)];
    QString answers;
    const QString prompt = promptFor(c.a, s.sample_id, &answers);
    QString text = tr("Sample %1 (%2): %3, score %4 -> %5\n")
                       .arg(QString::fromStdString(s.sample_id), QString::fromStdString(c.a.summary.dataset),
                            QString::fromLatin1(sample_change_name(s.kind)))
                       .arg(s.score_a, 0, 'f', 2)
                       .arg(s.score_b, 0, 'f', 2);
    if (!answers.isEmpty()) text += tr("Answers: %1\n").arg(answers);
    text += tr("\n--- prediction A (%1) ---\n%2\n").arg(runCaption(c.a), QString::fromStdString(s.prediction_a));
    text += tr("\n--- prediction B (%1) ---\n%2\n").arg(runCaption(c.b), QString::fromStdString(s.prediction_b));
    text += tr("\n--- prompt (before truncation to the model's context) ---\n%1\n").arg(prompt);
    sample_view_->setPlainText(text);
}

void ResultsPanel::report(const QString& title, const QString& message) {
    last_error_ = message;
    status_->setText(message);
    Q_EMIT errorReported(message);
    if (show_dialogs_) QMessageBox::critical(this, title, message);
}

}  // namespace mlawb::gui
