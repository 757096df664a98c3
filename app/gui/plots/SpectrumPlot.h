// SpectrumPlot: singular values of W_k, W_k,nope, W_v and [W_k,nope; W_v] (log y) against their
// index, a vertical marker at the joint rank n_kv x d_kv, and the cumulative energy on the right
// axis. One layer (all four matrices) or every layer overlaid (one matrix). A thin view over a
// plain mlawb::SpectrumReport.
#pragma once

#include "analysis/spectrum.h"
#include "app/gui/plots/PlotExport.h"

#include "app/gui/plots/QCustomPlotInclude.h"

#include <cstdint>

namespace mlawb::gui {

class SpectrumPlot : public QCustomPlot {
    Q_OBJECT

public:
    static constexpr int kAllLayers = -1;

    explicit SpectrumPlot(QWidget* parent = nullptr);

    void setReport(const mlawb::SpectrumReport& report);
    // `layerIndex` indexes report.layers, or kAllLayers for the overlay of `overlayMatrix`.
    void setLayerIndex(int layerIndex);
    void setOverlayMatrix(mlawb::SpectrumMatrix matrix);

    bool hasReport() const { return !report_.layers.empty(); }
    int layerIndex() const { return layer_index_; }
    // x of the rank marker (singular values are numbered from 1, so the kept ones are x <= rank);
    // -1 when the report has no latent (no marker drawn).
    double markerPosition() const;
    // Sigma curves and energy curves drawn (matrices with no rows are left out).
    int seriesCount() const { return graphCount(); }
    // One row per plotted point: layer, matrix, index (1-based), sigma, cumulative energy.
    PlotTable table() const;

private:
    void redraw();
    void addSpectrum(const mlawb::LayerSpectrum& layer, mlawb::SpectrumMatrix matrix, const QColor& colour,
                     bool overlay);

    mlawb::SpectrumReport report_;
    int layer_index_ = 0;
    mlawb::SpectrumMatrix overlay_matrix_ = mlawb::SpectrumMatrix::Joint;
    QCPItemStraightLine* marker_ = nullptr;
    QCPItemText* marker_label_ = nullptr;  // "rank 64" beside the marker
    PlotTable table_;  // rebuilt with the curves, so the CSV is exactly what is drawn
};

QString spectrumMatrixLabel(mlawb::SpectrumMatrix matrix);  // "W_k", "W_k,nope", "W_v", "joint"

}  // namespace mlawb::gui
