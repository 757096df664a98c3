// ParetoPlot: accuracy against KV bytes per token, one point per setting, the Pareto front drawn
// as a staircase through its points (the best score reachable within x bytes), each point
// labelled with its setting (labels stacked so they do not overlap), and the original model's
// score as a dashed horizontal baseline. A thin view over a plain ParetoData (RunCatalog.h): it
// computes nothing but what it draws. A click on (or within 12 px of) a point emits its run.
#pragma once

#include "app/gui/RunCatalog.h"
#include "app/gui/plots/PlotExport.h"

#include "app/gui/plots/QCustomPlotInclude.h"

#include <cstdint>

namespace mlawb::gui {

class ParetoPlot : public QCustomPlot {
    Q_OBJECT

public:
    static constexpr double kClickRadiusPx = 12.0;

    explicit ParetoPlot(QWidget* parent = nullptr);

    void setData(const ParetoData& data);
    const ParetoData& data() const { return data_; }

    // Index into data().points of the point nearest `pixel` within kClickRadiusPx, else -1.
    int pointAt(const QPointF& pixel) const;
    // Where point `index` is drawn, in widget pixels.
    QPointF pointPixel(int index) const;
    // Points drawn on the front line (in drawing order) and point labels shown.
    int frontPointCount() const;
    int labelCount() const { return static_cast<int>(labels_.size()); }
    bool hasBaselineLine() const;
    // One row per point: run_id, setting, label, kv_bytes_per_token, score, on_front, baseline.
    PlotTable table() const;

Q_SIGNALS:
    void pointClicked(qint64 runId);

protected:
    void resizeEvent(QResizeEvent* event) override;

private:
    void redraw();
    // Stacks the labels of points drawn close together (pixels depend on the widget's size).
    void layoutLabels();
    void onMousePress(QMouseEvent* event);

    ParetoData data_;
    QCPGraph* others_ = nullptr;    // points off the front
    QCPGraph* front_ = nullptr;     // the front: line and points
    QCPGraph* baselinePoint_ = nullptr;
    QCPItemStraightLine* baseline_ = nullptr;
    QCPItemText* baselineLabel_ = nullptr;
    std::vector<QCPItemText*> labels_;
};

}  // namespace mlawb::gui
