#include "app/gui/panels/EvalPanel.h"

#include "analysis/mla_spec.h"
#include "app/gui/BundledResources.h"
#include "app/gui/RunCatalog.h"
#include "app/gui/workers/BackgroundJob.h"
#include "eval/longbench.h"

#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMessageBox>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTableWidget>
#include <QVBoxLayout>

#include <cmath>
#include <memory>

namespace mlawb::gui {

namespace {

QString cleanPath(const QString& path) {
    return path.isEmpty() ? QString() : QDir::cleanPath(QFileInfo(path).absoluteFilePath());
}

// 75 s -> "1:15", 3725 s -> "1:02:05".
QString clockText(double seconds) {
    const auto total = static_cast<qint64>(std::llround(std::max(0.0, seconds)));
    const qint64 h = total / 3600, m = (total / 60) % 60, s = total % 60;
    return h > 0 ? QString::asprintf("%lld:%02lld:%02lld", h, m, s) : QString::asprintf("%lld:%02lld", m, s);
}

QTableWidgetItem* item(const QString& text, bool number = false) {
    auto* i = new QTableWidgetItem(text);
    if (number) i->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return i;
}

}  // namespace

QString EvalPanel::defaultDatabasePath() {
    return QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + QStringLiteral("/results.db");
}

EvalPanel::EvalPanel(QWidget* parent) : QWidget(parent) {
    job_ = new BackgroundJob(this);
    connect(job_, &BackgroundJob::finished, this, &EvalPanel::onFinished);
    buildUi();
    const QString bundled = bundledTasksFolder();
    if (!bundled.isEmpty()) setTasksFolder(bundled);
    setDatabasePath(defaultDatabasePath());
}

void EvalPanel::buildUi() {
    model_label_ = new QLabel(tr("No model open."));
    model_label_->setWordWrap(true);
    model_label_->setTextInteractionFlags(Qt::TextSelectableByMouse);

    tasks_edit_ = new QLineEdit;
    tasks_edit_->setPlaceholderText(tr("A LongBench-format folder: <dataset>.jsonl + dataset2prompt.json + dataset2maxlen.json"));
    auto* tasksBrowse = new QPushButton(tr("Browse…"));
    auto* tasksRow = new QHBoxLayout;
    tasksRow->addWidget(tasks_edit_, 1);
    tasksRow->addWidget(tasksBrowse);

    datasets_ = new QListWidget;
    datasets_->setMaximumHeight(96);
    limit_ = new QSpinBox;
    limit_->setRange(0, 1000000);
    limit_->setSpecialValueText(tr("all"));
    limit_->setMinimumWidth(90);
    limit_->setValue(5);
    limit_->setToolTip(tr("The first N records of each dataset (\"all\": every record)"));

    setting_edit_ = new QLineEdit(QStringLiteral("strategy=full"));
    setting_edit_->setToolTip(tr("The --mla setting; strategy=full is the original model. The Settings tab's "
                                 "\"Evaluate this setting\" fills it in."));
    auto* original = new QPushButton(tr("Original"));
    original->setToolTip(tr("strategy=full: the original model, the baseline of the Pareto view"));
    auto* settingRow = new QHBoxLayout;
    settingRow->addWidget(setting_edit_, 1);
    settingRow->addWidget(original);
    setting_check_ = new QLabel;
    setting_check_->setWordWrap(true);

    db_edit_ = new QLineEdit;
    auto* dbBrowse = new QPushButton(tr("Browse…"));
    auto* dbRow = new QHBoxLayout;
    dbRow->addWidget(db_edit_, 1);
    dbRow->addWidget(dbBrowse);

    auto* setupBox = new QGroupBox(tr("Evaluation"));
    auto* form = new QFormLayout(setupBox);
    form->addRow(tr("Model"), model_label_);
    form->addRow(tr("Tasks folder"), tasksRow);
    form->addRow(tr("Datasets"), datasets_);
    auto* limitRow = new QHBoxLayout;
    limitRow->addWidget(limit_);
    limitRow->addWidget(new QLabel(tr("records per dataset (the first ones; 0 = all)")));
    limitRow->addStretch(1);
    form->addRow(tr("Limit"), limitRow);
    form->addRow(tr("Setting (--mla)"), settingRow);
    form->addRow(QString(), setting_check_);
    form->addRow(tr("Results database"), dbRow);

    run_button_ = new QPushButton(tr("Run evaluation"));
    run_button_->setToolTip(tr("Run (Ctrl+R). Running the same choices again resumes a cancelled run."));
    cancel_button_ = new QPushButton(tr("Cancel"));
    cancel_button_->setEnabled(false);
    progress_ = new QProgressBar;
    progress_->setRange(0, 1);
    progress_->setValue(0);
    progress_->setFormat(QStringLiteral("%v / %m samples"));
    eta_ = new QLabel;
    eta_->setMinimumWidth(220);
    status_ = new QLabel(tr("Choose datasets and a setting, then Run."));
    status_->setWordWrap(true);
    auto* runRow = new QHBoxLayout;
    runRow->addWidget(run_button_);
    runRow->addWidget(cancel_button_);
    runRow->addWidget(progress_, 1);
    runRow->addWidget(eta_);

    scores_table_ = new QTableWidget(0, ScoreColumnCount);
    scores_table_->setHorizontalHeaderLabels({tr("Dataset"), tr("Run"), tr("Samples"), tr("Score (live)"), tr("State")});
    scores_table_->verticalHeader()->setVisible(false);
    scores_table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    scores_table_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    scores_table_->verticalHeader()->setDefaultSectionSize(scores_table_->fontMetrics().height() + 10);
    auto* scoresBox = new QGroupBox(tr("Scores per dataset (mean of the samples recorded so far, %)"));
    auto* scoresLayout = new QVBoxLayout(scoresBox);
    scoresLayout->addWidget(scores_table_);

    auto* layout = new QVBoxLayout(this);
    layout->addWidget(setupBox);
    layout->addLayout(runRow);
    layout->addWidget(status_);
    layout->addWidget(scoresBox, 1);

    connect(tasksBrowse, &QPushButton::clicked, this, &EvalPanel::chooseTasksFolder);
    connect(tasks_edit_, &QLineEdit::editingFinished, this, [this] {
        if (cleanPath(tasks_edit_->text()) != tasks_edit_->property("loaded").toString()) setTasksFolder(tasks_edit_->text());
    });
    connect(dbBrowse, &QPushButton::clicked, this, &EvalPanel::chooseDatabase);
    connect(db_edit_, &QLineEdit::editingFinished, this, [this] { setDatabasePath(db_edit_->text()); });
    connect(original, &QPushButton::clicked, this, [this] { setSetting(QStringLiteral("strategy=full")); });
    connect(setting_edit_, &QLineEdit::textChanged, this, &EvalPanel::validateSetting);
    connect(run_button_, &QPushButton::clicked, this, &EvalPanel::startEvaluation);
    connect(cancel_button_, &QPushButton::clicked, this, &EvalPanel::cancelEvaluation);
    validateSetting();
}

void EvalPanel::setModelFolder(const QString& folder) {
    model_folder_ = cleanPath(folder);
    model_label_->setText(model_folder_.isEmpty() ? tr("No model open.") : QDir::toNativeSeparators(model_folder_));
}

bool EvalPanel::setTasksFolder(const QString& folder) {
    const QString clean = cleanPath(folder);
    tasks_edit_->setText(clean);
    datasets_->clear();
    tasks_edit_->setProperty("loaded", clean);
    try {
        const LongBenchTaskSet tasks = LongBenchTaskSet::open(clean.toStdString());
        for (const std::string& name : tasks.datasets()) {
            auto* entry = new QListWidgetItem(QString::fromStdString(name));
            entry->setFlags(entry->flags() | Qt::ItemIsUserCheckable);
            entry->setCheckState(Qt::Checked);
            entry->setToolTip(QString::fromStdString(tasks.metric_name(name)));
            datasets_->addItem(entry);
        }
    } catch (const std::exception& e) {
        report(tr("Not a task folder"), QString::fromStdString(e.what()));
        return false;
    }
    status_->setText(tr("%1 datasets in %2.").arg(datasets_->count()).arg(QFileInfo(clean).fileName()));
    return true;
}

QString EvalPanel::tasksFolder() const { return tasks_edit_->property("loaded").toString(); }

QStringList EvalPanel::availableDatasets() const {
    QStringList names;
    for (int i = 0; i < datasets_->count(); ++i) names.append(datasets_->item(i)->text());
    return names;
}

QStringList EvalPanel::checkedDatasets() const {
    QStringList names;
    for (int i = 0; i < datasets_->count(); ++i)
        if (datasets_->item(i)->checkState() == Qt::Checked) names.append(datasets_->item(i)->text());
    return names;
}

void EvalPanel::setCheckedDatasets(const QStringList& names) {
    for (int i = 0; i < datasets_->count(); ++i)
        datasets_->item(i)->setCheckState(names.contains(datasets_->item(i)->text()) ? Qt::Checked : Qt::Unchecked);
}

void EvalPanel::setLimit(int limit) { limit_->setValue(limit < 0 ? 0 : limit); }

int EvalPanel::limit() const { return limit_->value() == 0 ? -1 : limit_->value(); }

void EvalPanel::setSetting(const QString& spec) { setting_edit_->setText(spec); }

QString EvalPanel::setting() const { return setting_edit_->text().trimmed(); }

void EvalPanel::setDatabasePath(const QString& path) {
    const QString clean = cleanPath(path);
    const bool changed = clean != db_edit_->property("current").toString();
    db_edit_->setText(clean);
    db_edit_->setProperty("current", clean);
    if (changed) Q_EMIT databasePathChanged(clean);
}

QString EvalPanel::databasePath() const { return db_edit_->property("current").toString(); }

void EvalPanel::validateSetting() {
    try {
        const MlaSpec spec = MlaSpec::parse(setting().toStdString());
        setting_check_->setStyleSheet(QString());
        setting_check_->setText(is_baseline_setting(spec.to_string())
                                    ? tr("The original model (the baseline).")
                                    : tr("Converted in memory before the evaluation: %1")
                                          .arg(QString::fromStdString(setting_label(spec.to_string()))));
    } catch (const std::exception& e) {
        setting_check_->setStyleSheet(QStringLiteral("QLabel { color: #c62828; }"));
        setting_check_->setText(QString::fromStdString(e.what()));
    }
}

void EvalPanel::chooseTasksFolder() {
    const QString folder = QFileDialog::getExistingDirectory(this, tr("Tasks folder"), tasksFolder());
    if (!folder.isEmpty()) setTasksFolder(folder);
}

void EvalPanel::chooseDatabase() {
    const QString file = QFileDialog::getSaveFileName(this, tr("Results database"), databasePath(),
                                                      tr("SQLite databases (*.db *.sqlite);;All files (*)"), nullptr,
                                                      QFileDialog::DontConfirmOverwrite);
    if (!file.isEmpty()) setDatabasePath(file);
}

bool EvalPanel::isRunning() const { return job_->isRunning(); }

void EvalPanel::cancelEvaluation() {
    if (!job_->isRunning()) return;
    job_->cancel();
    status_->setText(tr("Cancelling after the sample in flight…"));
}

bool EvalPanel::startEvaluation() {
    if (job_->isRunning()) return false;
    QString missing;
    if (model_folder_.isEmpty()) missing = tr("no model is open");
    else if (tasksFolder().isEmpty()) missing = tr("no tasks folder");
    else if (checkedDatasets().isEmpty()) missing = tr("no dataset is checked");
    else if (databasePath().isEmpty()) missing = tr("no results database");
    if (!missing.isEmpty()) {
        report(tr("Cannot run"), tr("Cannot run the evaluation: %1.").arg(missing));
        return false;
    }
    // Refuse a bad setting here, with validation's reason, rather than after loading the model.
    try {
        MlaSpec::parse(setting().toStdString());
    } catch (const std::exception& e) {
        report(tr("Invalid setting"), QString::fromStdString(e.what()));
        return false;
    }
    QDir().mkpath(QFileInfo(databasePath()).absolutePath());

    EvalRequest request;
    request.model_folder = model_folder_.toStdString();
    request.tasks_folder = tasksFolder().toStdString();
    request.db_path = databasePath().toStdString();
    for (const QString& name : checkedDatasets()) request.datasets.push_back(name.toStdString());
    request.limit = limit();
    request.spec = setting().toStdString();
    request.scores = scores_;

    const bool started = job_->start([this, request](const JobControl& control) {
        auto outcome = std::make_shared<EvalOutcome>(run_longbench_evaluation(
            request, [this, &control](const EvalProgress& p) { control.post([this, p] { onProgress(p); }); },
            control.cancelled));
        return std::function<void()>([this, outcome] { outcome_ = *outcome; });
    });
    if (!started) return false;

    outcome_.reset();
    last_error_.clear();
    scores_table_->setRowCount(0);
    for (const QString& name : checkedDatasets()) {
        const int row = scores_table_->rowCount();
        scores_table_->insertRow(row);
        scores_table_->setItem(row, ColDataset, item(name));
        scores_table_->setItem(row, ColRun, item(QStringLiteral("—"), true));
        scores_table_->setItem(row, ColDone, item(QStringLiteral("—"), true));
        scores_table_->setItem(row, ColScore, item(QStringLiteral("—"), true));
        scores_table_->setItem(row, ColState, item(tr("queued")));
    }
    progress_->setRange(0, 0);  // busy while the model loads
    eta_->clear();
    status_->setText(tr("Starting…"));
    clock_.start();
    setRunning(true);
    return true;
}

void EvalPanel::setRunning(bool running) {
    run_button_->setEnabled(!running);
    cancel_button_->setEnabled(running);
    for (QWidget* w : {static_cast<QWidget*>(tasks_edit_), static_cast<QWidget*>(datasets_),
                       static_cast<QWidget*>(limit_), static_cast<QWidget*>(setting_edit_),
                       static_cast<QWidget*>(db_edit_)})
        w->setEnabled(!running);
}

int EvalPanel::rowOf(const QString& dataset) const {
    for (int row = 0; row < scores_table_->rowCount(); ++row)
        if (scores_table_->item(row, ColDataset)->text() == dataset) return row;
    return -1;
}

void EvalPanel::onProgress(const EvalProgress& p) {
    const QString dataset = QString::fromStdString(p.dataset);
    if (p.event == EvalProgress::Event::Stage) {
        QString stage = QString::fromStdString(p.stage);
        if (!stage.isEmpty()) stage[0] = stage[0].toUpper();
        status_->setText(stage + QStringLiteral("…"));
        return;
    }
    progress_->setRange(0, static_cast<int>(std::max<int64_t>(1, p.overall_total)));
    progress_->setValue(static_cast<int>(p.overall_done));
    const int row = rowOf(dataset);
    if (row >= 0) {
        scores_table_->item(row, ColRun)->setText(QString::number(p.run_id));
        scores_table_->item(row, ColDone)->setText(QStringLiteral("%1 / %2").arg(p.dataset_done).arg(p.dataset_total));
        if (p.dataset_done > 0) scores_table_->item(row, ColScore)->setText(QString::number(p.score_percent, 'f', 2));
    }
    switch (p.event) {
    case EvalProgress::Event::DatasetStarted:
        if (row >= 0)
            scores_table_->item(row, ColState)
                ->setText(p.already_finished ? tr("finished before")
                          : p.resumed        ? tr("resumed (%1 recorded)").arg(p.dataset_done)
                                             : tr("running"));
        status_->setText(p.already_finished ? tr("%1: already finished in run %2.").arg(dataset).arg(p.run_id)
                         : p.resumed ? tr("%1: resuming run %2 (%3 samples already recorded).")
                                           .arg(dataset).arg(p.run_id).arg(p.dataset_done)
                                     : tr("%1: run %2…").arg(dataset).arg(p.run_id));
        break;
    case EvalProgress::Event::Sample: {
        const double elapsed = static_cast<double>(clock_.elapsed()) / 1000.0;
        const double perSample = elapsed / static_cast<double>(std::max<int64_t>(1, p.new_samples));
        eta_->setText(tr("ETA %1 (%2 s/sample)")
                          .arg(clockText(perSample * static_cast<double>(p.overall_total - p.overall_done)))
                          .arg(perSample, 0, 'f', 2));
        Q_EMIT sampleScored(dataset, p.run_id, static_cast<int>(p.dataset_done));
        break;
    }
    case EvalProgress::Event::DatasetFinished:
        if (row >= 0) scores_table_->item(row, ColState)->setText(tr("finished"));
        Q_EMIT runsChanged();
        break;
    case EvalProgress::Event::Stage:
        break;
    }
}

void EvalPanel::onFinished(bool ok, bool cancelled, const QString& message) {
    setRunning(false);
    if (progress_->maximum() == 0) progress_->setRange(0, 1);
    const QString elapsed = clockText(static_cast<double>(clock_.elapsed()) / 1000.0);
    for (int row = 0; row < scores_table_->rowCount(); ++row) {
        QTableWidgetItem* state = scores_table_->item(row, ColState);
        if (state->text() == tr("running") || state->text().startsWith(tr("resumed")))
            state->setText(cancelled ? tr("cancelled") : ok ? state->text() : tr("failed"));
    }
    if (ok && outcome_) {
        eta_->setText(tr("done in %1").arg(elapsed));
        status_->setText(tr("Finished: mean of the dataset scores %1, recorded in %2.")
                             .arg(outcome_->overall, 0, 'f', 2)
                             .arg(QDir::toNativeSeparators(QString::fromStdString(outcome_->db_path))));
    } else if (cancelled) {
        eta_->setText(tr("stopped after %1").arg(elapsed));
        status_->setText(tr("Cancelled: the samples scored so far are recorded; Run again to resume."));
    } else {
        eta_->clear();
        report(tr("Evaluation failed"), message);
    }
    Q_EMIT runsChanged();
    Q_EMIT evaluationFinished(ok, cancelled, message);
}

QString EvalPanel::etaText() const { return eta_->text(); }

QString EvalPanel::statusText() const { return status_->text(); }

void EvalPanel::report(const QString& title, const QString& message) {
    last_error_ = message;
    status_->setText(message);
    Q_EMIT errorReported(message);
    if (show_dialogs_) QMessageBox::critical(this, title, message);
}

}  // namespace mlawb::gui
