#include "app/gui/plots/SpectrumPlot.h"

#include <algorithm>

namespace mlawb::gui {

namespace {

QColor matrixColour(mlawb::SpectrumMatrix matrix) {
    switch (matrix) {
        case mlawb::SpectrumMatrix::K: return QColor(31, 119, 180);
        case mlawb::SpectrumMatrix::KNope: return QColor(255, 127, 14);
        case mlawb::SpectrumMatrix::V: return QColor(44, 160, 44);
        case mlawb::SpectrumMatrix::Joint: return QColor(214, 39, 40);
    }
    return Qt::black;
}

// Distinct colours for the overlay's layers: hues spread evenly around the wheel.
QColor layerColour(int i, int count) { return QColor::fromHsv((i * 300) / std::max(count, 1), 200, 200); }

}  // namespace

QString spectrumMatrixLabel(mlawb::SpectrumMatrix matrix) {
    switch (matrix) {
        case mlawb::SpectrumMatrix::K: return QStringLiteral("W_k");
        case mlawb::SpectrumMatrix::KNope: return QStringLiteral("W_k,nope");
        case mlawb::SpectrumMatrix::V: return QStringLiteral("W_v");
        case mlawb::SpectrumMatrix::Joint: return QStringLiteral("joint");
    }
    return {};
}

SpectrumPlot::SpectrumPlot(QWidget* parent) : QCustomPlot(parent) {
    setMinimumSize(480, 320);
    xAxis->setLabel(tr("singular value index i"));
    yAxis->setLabel(tr("σ_i"));
    yAxis->setScaleType(QCPAxis::stLogarithmic);
    yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    yAxis->setNumberFormat(QStringLiteral("eb"));
    yAxis->setNumberPrecision(0);
    yAxis2->setVisible(true);
    yAxis2->setLabel(tr("cumulative energy Σσ² (dashed)"));
    yAxis2->setRange(0.0, 1.02);
    legend->setVisible(true);
    legend->setFont(QFont(font().family(), 8));
    axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
    marker_ = new QCPItemStraightLine(this);
    marker_->setPen(QPen(Qt::black, 1.5, Qt::DashDotLine));
    marker_->setVisible(false);
    marker_->setClipToAxisRect(true);
    marker_label_ = new QCPItemText(this);
    marker_label_->position->setTypeX(QCPItemPosition::ptPlotCoords);
    marker_label_->position->setTypeY(QCPItemPosition::ptAxisRectRatio);
    marker_label_->setPositionAlignment(Qt::AlignLeft | Qt::AlignTop);
    marker_label_->setPadding(QMargins(4, 2, 4, 2));
    marker_label_->setVisible(false);
}

void SpectrumPlot::setReport(const mlawb::SpectrumReport& report) {
    report_ = report;
    layer_index_ = std::clamp(layer_index_, kAllLayers, static_cast<int>(report_.layers.size()) - 1);
    redraw();
}

void SpectrumPlot::setLayerIndex(int layerIndex) {
    layer_index_ = layerIndex;
    if (hasReport()) layer_index_ = std::clamp(layer_index_, kAllLayers, static_cast<int>(report_.layers.size()) - 1);
    redraw();
}

void SpectrumPlot::setOverlayMatrix(mlawb::SpectrumMatrix matrix) {
    overlay_matrix_ = matrix;
    redraw();
}

double SpectrumPlot::markerPosition() const { return report_.rank > 0 ? static_cast<double>(report_.rank) : -1.0; }

void SpectrumPlot::addSpectrum(const mlawb::LayerSpectrum& layer, mlawb::SpectrumMatrix matrix, const QColor& colour,
                               bool overlay) {
    const std::vector<double>& sigma = layer.sigma(matrix);
    if (sigma.empty()) return;  // W_k,nope when every pair keeps RoPE
    const std::vector<double> energy = layer.cumulative_energy(matrix);
    QVector<double> x, y, e;
    for (size_t i = 0; i < sigma.size(); ++i) {
        const double index = static_cast<double>(i + 1);
        // A log axis cannot show 0: exact zeros stay in the CSV but not in the curve.
        if (sigma[i] > 0.0) {
            x.append(index);
            y.append(sigma[i]);
        }
        e.append(energy[i]);
        table_.rows.push_back({QString::number(layer.layer), QString::fromLatin1(spectrum_matrix_name(matrix)),
                               QString::number(i + 1), QString::number(sigma[i], 'g', 17),
                               QString::number(energy[i], 'g', 17)});
    }
    QVector<double> ex;
    for (int i = 0; i < e.size(); ++i) ex.append(i + 1);

    const QString name = overlay ? tr("layer %1").arg(layer.layer) : spectrumMatrixLabel(matrix);
    QCPGraph* curve = addGraph(xAxis, yAxis);
    curve->setName(name);
    curve->setPen(QPen(colour, 1.6));
    curve->setData(x, y, true);

    QCPGraph* energyCurve = addGraph(xAxis, yAxis2);
    energyCurve->setPen(QPen(colour, 1.0, Qt::DashLine));
    energyCurve->setData(ex, e, true);
    energyCurve->removeFromLegend();
}

void SpectrumPlot::redraw() {
    clearGraphs();
    table_ = PlotTable{{QStringLiteral("layer"), QStringLiteral("matrix"), QStringLiteral("index"),
                        QStringLiteral("sigma"), QStringLiteral("cumulative_energy")},
                       {}};
    if (hasReport()) {
        if (layer_index_ == kAllLayers) {
            const int count = static_cast<int>(report_.layers.size());
            for (int i = 0; i < count; ++i)
                addSpectrum(report_.layers[static_cast<size_t>(i)], overlay_matrix_, layerColour(i, count), true);
            xAxis->setLabel(tr("singular value index i (%1, all layers)").arg(spectrumMatrixLabel(overlay_matrix_)));
        } else {
            const mlawb::LayerSpectrum& layer = report_.layers[static_cast<size_t>(layer_index_)];
            for (mlawb::SpectrumMatrix matrix : mlawb::spectrum_matrices())
                addSpectrum(layer, matrix, matrixColour(matrix), false);
            xAxis->setLabel(tr("singular value index i (layer %1)").arg(layer.layer));
        }
        rescaleAxes();
        yAxis2->setRange(0.0, 1.02);
    }
    marker_->setVisible(hasReport() && markerPosition() > 0);
    if (marker_->visible()) {
        marker_->point1->setCoords(markerPosition(), 1.0);
        marker_->point2->setCoords(markerPosition(), 2.0);
        marker_label_->position->setCoords(markerPosition(), 0.02);
        marker_label_->setText(tr("rank n_kv·d_kv = %1").arg(report_.rank));
    }
    marker_label_->setVisible(marker_->visible());
    replot();
}

PlotTable SpectrumPlot::table() const { return table_; }

}  // namespace mlawb::gui
