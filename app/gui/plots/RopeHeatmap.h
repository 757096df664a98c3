// RopeHeatmap: the 2-norm RoPE scores of one head as a colour map, layer (y) x pair (x), with
// the pairs a setting keeps outlined (one QCPItemRect per kept cell). A thin view over plain
// mlawb::RopeScores and mlawb::KeptPairs: it computes nothing but the cells it draws.
#pragma once

#include "analysis/rope_scores.h"
#include "analysis/strategies.h"
#include "app/gui/plots/PlotExport.h"

#include "app/gui/plots/QCustomPlotInclude.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace mlawb::gui {

// What the colour of a cell means.
enum class RopeQuantity {
    Score,  // S[l,g,k] of KV head g (the 2-norm strategy's score)
    QNorm,  // Qn[l,h,k] of query head h
    KNorm,  // Kn[l,g,k] of KV head g
};

class RopeHeatmap : public QCustomPlot {
    Q_OBJECT

public:
    explicit RopeHeatmap(QWidget* parent = nullptr);

    // Replaces the data; `kept` may be empty (no outline) or must match the scores' shape.
    void setData(const mlawb::RopeScores& scores, const mlawb::KeptPairs& kept);
    void setKeptPairs(const mlawb::KeptPairs& kept);
    // `head` is a query head for QNorm, a KV head otherwise; clamped to the valid range.
    void setView(RopeQuantity quantity, int64_t head);

    bool hasData() const { return scores_.n_layer > 0; }
    RopeQuantity quantity() const { return quantity_; }
    int64_t head() const { return head_; }
    // The KV head whose kept pairs are outlined: `head` itself, or a query head's KV head.
    int64_t outlinedKvHead() const;
    // The value of cell (layer, pair) under the current view.
    double valueAt(int64_t layer, int64_t pair) const;
    // (layer, pair) of every outlined cell, layer-major, pairs ascending.
    std::vector<std::pair<int64_t, int64_t>> outlinedCells() const { return outlined_; }
    // "layer 3, pair 5: score 1.234" for the cell under plot coordinates (x, y); "" outside.
    QString hoverText(double x, double y) const;
    // Every cell shown: layer, pair, value, kept.
    PlotTable table() const;

private:
    void redraw();
    void showHoverToolTip(QMouseEvent* event);

    mlawb::RopeScores scores_;
    mlawb::KeptPairs kept_;
    RopeQuantity quantity_ = RopeQuantity::Score;
    int64_t head_ = 0;
    QCPColorMap* map_ = nullptr;
    QCPColorScale* scale_ = nullptr;
    std::vector<std::pair<int64_t, int64_t>> outlined_;
};

QString ropeQuantityName(RopeQuantity quantity);  // "score", "Qn", "Kn"

}  // namespace mlawb::gui
