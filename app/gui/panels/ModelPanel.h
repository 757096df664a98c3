// ModelPanel: the summary of one checkpoint, as `mlawb info` prints it. A thin view over a
// plain mlawb::ModelSummary: it reads no files and knows nothing about loading.
#pragma once

#include "core/model_summary.h"

#include <QMap>
#include <QString>
#include <QWidget>

class QFormLayout;
class QLabel;
class QStackedWidget;
class QTableWidget;

namespace mlawb::gui {

class ModelPanel : public QWidget {
    Q_OBJECT

public:
    explicit ModelPanel(QWidget* parent = nullptr);

    // Shows `summary`, replacing whatever was shown before.
    void showSummary(const mlawb::ModelSummary& summary);
    // Back to the "no model loaded" hint.
    void clear();
    bool hasSummary() const;

    // The text shown for one info field, by key ("q_heads", "kv_heads", "parameters", ...);
    // empty for an unknown key. Lets tests and later panels read what the user sees.
    QString fieldText(const QString& key) const;
    QStringList fieldKeys() const { return field_labels_.keys(); }
    QTableWidget* layerTable() const { return layer_table_; }

private:
    QWidget* buildSummaryPage();
    // Adds a "caption: value" row to `form` and remembers the value label under `key`.
    void addField(QFormLayout* form, const QString& key, const QString& caption);
    void setField(const QString& key, const QString& text);
    void fillLayerTable(const mlawb::ModelSummary& summary);

    QStackedWidget* pages_ = nullptr;  // page 0: hint, page 1: summary
    QLabel* title_ = nullptr;          // the checkpoint folder
    QMap<QString, QLabel*> field_labels_;
    QTableWidget* layer_table_ = nullptr;
};

}  // namespace mlawb::gui
